"""``nudgegym quickstart``: the whole loop on the embedded default synthetic shop.

Each stage is one ordinary ``nudgegym`` command run in-process with its own run folder under
``--out``, so a user can re-run or vary any stage by hand with the command printed for it.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import typer

from agents.cli._app import app, resumable_output
from agents.report import deployable_candidate, write_report
from predictors.errors import NudgeGymError
from predictors.io import write_json, write_run_config, write_text


def _run(args: list[str]) -> None:
    """Run one nudgegym command in-process; raise on failure."""
    typer.echo(f"\n$ nudgegym {shlex.join(args)}", err=True)
    try:
        app(args=args, standalone_mode=False)
    except typer.Exit as e:
        if e.exit_code:
            raise NudgeGymError(f"stage failed: nudgegym {shlex.join(args)}") from None
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # a usage error of the parser
            raise NudgeGymError(f"stage failed: nudgegym {shlex.join(args)}: {e}") from None
        raise


def quickstart_stages(out: Path, fast: bool, seed: int) -> list[tuple[str, list[str]]]:
    """The quickstart's commands in order (name, argv); ``export`` is added once the best
    trained policy is known."""
    if fast:
        users, periods, epochs, ppo_steps, dqn_steps = "1200", "16", "2", "4096", "4096"
        eval_users, boot = ["--max-users", "200", "--min-rollouts", "0"], "50"
        tune = ["--users", "100", "--budget", str(100 * 26 * 8)]
        room = ["--users", "300", "--fit-users", "300", "--val-users", "200",
                "--tune-budget", str(100 * 26 * 8)]
    else:
        users, periods, epochs, ppo_steps, dqn_steps = "5000", "52", "10", "300000", "150000"
        eval_users, boot = [], "200"
        tune = ["--users", "500", "--budget", str(500 * 26 * 60)]
        room = ["--users", "5000", "--fit-users", "5000", "--val-users", "2500",
                "--tune-budget", str(500 * 26 * 60)]
    data, pred, s = out / "data", out / "predictor", str(seed)
    small = ["--n-envs", "256", "--eval-users", "200"] if fast else []
    return [
        ("generate", ["generate", "--users", users, "--periods", periods, "--logging",
                      "campaign", "--seed", s, "--out", str(data)]),
        ("inspect", ["inspect", str(data), "--out", str(out / "inspect")]),
        ("train-predictor", ["train-predictor", "--data", str(data), "--model", "gru",
                             "--epochs", epochs, "--dad", "1", "--seed", s, "--out", str(pred),
                             "--no-progress"]),
        ("eval-predictor", ["eval-predictor", "--predictor", str(pred), "--data", str(data),
                            "--out", str(out / "predictor_eval")]),
        ("fidelity", ["fidelity", "--predictor", str(pred), "--data", str(data),
                      "--seed", s, "--out", str(out / "fidelity")]
         + (["--replicates", "1"] if fast else [])),
        ("tune-rule", ["tune-rule", "--data", str(data), "--predictor", str(pred), "--env",
                       "sim", *tune, "--seed", s, "--out", str(out / "tune")]),
        ("room", ["room", "--data", str(data), *room, "--seed", s, "--out", str(out / "room")]),
        # the reference a real shop cannot run: the rule tuned and improved in the TRUE world,
        # so the report can say whether the method finds the room the room stage measured
        ("tune-rule-world", ["tune-rule", "--data", str(data), "--predictor", str(pred),
                             "--env", "world", *tune, "--seed", s,
                             "--out", str(out / "tune_world")]),
        ("train-world-dqn", ["train-policy", "--predictor", str(pred), "--data", str(data),
                             "--env", "world", "--algo", "dqn", "--timesteps", "1024",
                             "--reward", "expected", "--warm-start", str(out / "tune_world"),
                             "--static-features", "--seed", s, "--no-progress",
                             "--out", str(out / "world_dqn"), *small,
                             "--config", str(out / WORLD_CONFIG)]),
        ("train-ppo", ["train-policy", "--predictor", str(pred), "--data", str(data),
                       "--algo", "ppo", "--timesteps", ppo_steps, "--seed", s,
                       "--warm-start", str(out / "tune"), "--out", str(out / "ppo"), *small,
                       "--config", str(out / SIM_CONFIG)]),
        ("train-dqn", ["train-policy", "--predictor", str(pred), "--data", str(data),
                       "--algo", "dqn", "--timesteps", dqn_steps, "--seed", s,
                       "--warm-start", str(out / "tune"), "--out", str(out / "dqn"), *small,
                       "--config", str(out / SIM_CONFIG)]),
        ("evaluate", ["evaluate", "--predictor", str(pred), "--data", str(data),
                      "--policy", str(out / "ppo"), "--policy", str(out / "dqn"),
                      "--policy", str(out / "world_dqn"),
                      *[x for r in QUICKSTART_RULES for x in ("--policy", r)],
                      "--tune-rule", str(out / "tune"), "--room", str(out / "room"),
                      "--seed", s,
                      "--out", str(out / "evaluation"), *eval_users]),
        ("ope", ["ope", str(data), "--policy", str(out / "ppo"), "--policy", str(out / "dqn"),
                 "--policy", "rule:never", "--policy", "rule:email_capped",
                 "--policy", "rule:greedy", "--policy", str(out / "tune"), "--boot", boot,
                 "--seed", s,
                 "--no-sequential", "--out", str(out / "ope")]),
        # the gate: a trained policy is recommended only if the logs vouch for its gain over
        # the simulator's best rule (its name is filled in once the evaluation has chosen it)
        ("select", ["select", str(data), "--policy", str(out / "ppo"), "--policy",
                    str(out / "dqn"), "--baseline", "BEST_RULE", "--horizon", "8",
                    "--boot", boot, "--seed", s, "--out", str(out / "selection")]),
    ]


#: The world reference's rollout improvement within the quickstart's budget: the previous
#: default (65,536 states, 60 fit epochs; about a minute on 2 cores, against 4-5 for the
#: current 262,144 states), and a small sample with ``--fast``.
WORLD_CONFIG = "world_dqn.yaml"
WORLD_YAML = {False: "warm_start:\n  rollout:\n    n_states: 65536\n    epochs: 60\n",
              True: "warm_start:\n  rollout:\n    n_states: 2048\n    iterations: 1\n"}

#: The simulator-trained agents' warm start: the rule improved by branches of the learned
#: shop, made safe (``agents.shop_branches.ShopBranchConfig``): it may leave the rule's action
#: only for an action the logging policy supports, and an action's advantage counts over the
#: first 4 periods only (where the shop's errors have not compounded).
SIM_CONFIG = "sim_safe.yaml"
_SAFE = "warm_start:\n  method: rollout\n  shop:\n    horizon: 4\n    support: logging\n"
SIM_YAML = {False: _SAFE + "  rollout:\n    n_states: 32768\n    iterations: 2\n"
                           "    switch_margin: 0.0\n",
            True: _SAFE + "  rollout:\n    n_states: 1024\n    iterations: 1\n"
                          "    epochs: 5\n    switch_margin: 0.0\n"}

#: Rule baselines the quickstart compares the trained policies with.
QUICKSTART_RULES = ("rule:never", "rule:random", "rule:always:email", "rule:email_capped",
                    "rule:winback", "rule:rfm", "rule:greedy")


def _best_trained(out: Path) -> Path:
    """The trained policy (ppo or dqn) with the higher simulated return in the evaluation (the
    verdict's candidate; never the TRUE-world reference)."""
    ev = json.loads((out / "evaluation" / "evaluation.json").read_text())
    return Path(deployable_candidate(ev)["policy"])


def _quickstart(out: Path, fast: bool, seed: int) -> tuple[Path, dict[str, float]]:
    write_run_config(out, "quickstart", {"out": str(out), "fast": fast}, seed=seed)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    stages = quickstart_stages(out, fast, seed)
    write_text(out / WORLD_CONFIG, WORLD_YAML[fast])
    write_text(out / SIM_CONFIG, SIM_YAML[fast])
    for i, (name, args) in enumerate(stages, 1):
        typer.echo(f"[{i}/{len(stages)}] {name}", err=True)
        if name == "ope":  # the tuned rule by its name, and the rule the simulator ranks first
            from agents.tune_rule import read_tuned_rule

            tuned = read_tuned_rule(out / "tune")
            args = [tuned if a == str(out / "tune") else a for a in args]
            rule = json.loads((out / "evaluation" / "evaluation.json").read_text())[
                "best_rule_sim"]
            if rule not in args:
                args = [*args[:-2], "--policy", rule, *args[-2:]]
        if name == "select":
            rule = json.loads((out / "evaluation" / "evaluation.json").read_text())[
                "best_rule_sim"]
            args = [rule if a == "BEST_RULE" else a for a in args]
        t0 = time.perf_counter()
        _run(args)
        timings[name] = round(time.perf_counter() - t0, 2)
    best = _best_trained(out)
    typer.echo(f"[{len(stages) + 1}/{len(stages) + 1}] export ({best.name})", err=True)
    t0 = time.perf_counter()
    _run(["export", "--policy", str(best), "--format", "onnx", "--out", str(out / "export")])
    timings["export"] = round(time.perf_counter() - t0, 2)
    timings["total"] = round(time.perf_counter() - t_all, 2)
    summary = {"timings_seconds": timings, "out": str(out)}
    summary_path = out / "inspect" / "summary.json"
    if summary_path.is_file():
        summary["dataset"] = json.loads(summary_path.read_text())
    write_json(out / "quickstart.json", summary)
    return write_report(out), timings


@app.command("quickstart")
def quickstart_cmd(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Run folder."),
    fast: bool = typer.Option(False, "--fast", help="A tiny shop and budgets (for tests)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every stage."),
) -> None:
    """The whole loop: generate the default shop, train the predictor, check the simulator,
    tune the rule, train PPO and DQN, evaluate against the rules (the tuned one included;
    simulated, off-policy and true value), export the best policy and write report.md."""
    with resumable_output(out):
        report, timings = _quickstart(out, fast, seed)
    typer.echo(f"\nquickstart finished in {timings['total']:.0f} s; report: {report}")
