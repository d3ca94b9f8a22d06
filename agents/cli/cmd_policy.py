"""``nudgegym train-policy``, ``nudgegym evaluate`` and ``nudgegym bench train``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from agents.cli._app import app, bench_app, output_folder, resumable_output
from predictors.fingerprint import check_pair
from predictors.io import check_out_folder, write_json, write_run_config


def _threads(n: int) -> None:
    """Set torch's intra-op threads in this entry point (small forwards: 1 avoids contention)."""
    if n > 0:
        import torch

        torch.set_num_threads(n)


@app.command("train-policy")
def train_policy_cmd(
    predictor: Path = typer.Option(..., help="Predictor run folder (train-predictor --out)."),
    data: Path = typer.Option(..., help="Dataset folder the predictor was trained on."),
    out: Path = typer.Option(..., "--out", help="Run folder to write."),
    algo: str = typer.Option("ppo", help="ppo, dqn or maskable-ppo."),
    timesteps: int = typer.Option(200_000, help="Env steps (user-periods) to train for."),
    config: Path | None = typer.Option(None, "--config", help="YAML overriding hyperparameters."),
    n_envs: int | None = typer.Option(None, help="Simultaneous users (default: the YAML's)."),
    env: str = typer.Option("learned", help="learned (simulator) or world (true synthetic "
                                            "world; needs truth/)."),
    horizon: int = typer.Option(26, help="Episode length in periods."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N] (the policy's)."),
    seed: int = typer.Option(0, help="Seed."),
    eval_every: int = typer.Option(0, help="Env steps between evaluations (0: ten per run)."),
    eval_users: int = typer.Option(2000, help="Held-out users per evaluation (0: all)."),
    coupon_gap: int = typer.Option(0, help="At most one coupon per this many periods (mask)."),
    max_contacts: int = typer.Option(0, help="Contact cap per 4 periods (mask; 0 = none)."),
    reward: str = typer.Option("sampled", help="Training reward: sampled (the drawn one) or "
                                               "expected (its noise-free expectation)."),
    reference: str | None = typer.Option(None, help="A rule or tune-rule run each evaluation "
                                                    "is compared with (paired, same users)."),
    warm_start: str | None = typer.Option(None, help="A rule or tune-rule run the policy starts "
                                                     "from (--env world: the rule improved by "
                                                     "rollouts, PPO clones it, DQN's Q-net is "
                                                     "its fit; learned shop: ppo: cloned; dqn: "
                                                     "its Q-values; YAML warm_start.method)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.zip."),
    threads: int = typer.Option(1, help="Torch intra-op threads (0: torch's default)."),
    penalty: float = typer.Option(0.0, "--penalty", help="Reward penalty per unit of an "
                                  "ensemble predictor's disagreement (MOPO-style; 0: none)."),
    static_features: bool = typer.Option(False, "--static-features/--no-static-features",
                                         help="The policy also reads the users table's static "
                                              "columns (push opt-in, loyalty tier, ...)."),
    progress: bool = typer.Option(True, help="Progress bar."),
) -> None:
    """Train an SB3 policy on the batched learned shop; write model, metrics and curves."""
    from agents.train import TrainConfig, train_policy

    _threads(threads)
    cfg = TrainConfig(algo=algo, timesteps=timesteps, env=env, n_envs=n_envs, horizon=horizon,
                      seed=seed, device=device, eval_every=eval_every, eval_users=eval_users,
                      coupon_gap=coupon_gap, max_contacts=max_contacts, progress=progress,
                      reward=reward, reference=reference, warm_start=warm_start,
                      penalty=penalty, static_features=static_features)
    opts = {"predictor": str(predictor), "data": str(data), "config": str(config) if config
            else None, "resume": resume, "threads": threads, **cfg.__dict__}
    check_pair(predictor, data)
    if config is not None:
        from agents.train import load_hyperparams

        load_hyperparams(algo, config)  # a bad --config fails before the env is built
    with resumable_output(out, resume=resume) as run:
        if not resume:
            write_run_config(run, "train-policy", opts, seed)
        m = train_policy(predictor, data, run, cfg, hyperparams=config, resume=resume)
    e = m["final_eval"]
    typer.echo(f"{algo}: {m['timesteps']:,} steps at {m['fps'] or 0:,.0f} steps/s; held-out "
               f"mean return {e['mean_return']:.2f} +- {e['ci_half_width']:.2f} -> {out}")
    if "vs_reference" in e:
        typer.echo(f"  vs {reference}: {e['vs_reference']:+.2f} [{e['vs_reference_low']:+.2f}, "
                   f"{e['vs_reference_high']:+.2f}]; first passed after "
                   f"{m['reference']['seconds_to_pass'] or float('nan'):.0f} s")


@app.command("evaluate")
def evaluate_cmd(
    predictor: Path = typer.Option(..., help="Predictor run folder."),
    data: Path = typer.Option(..., help="Dataset folder."),
    policy: list[str] = typer.Option([], "--policy",
                                     help="rule:NAME[:k=v,...], a train-policy or tune-rule "
                                          "run; repeat."),
    tune_rule: list[Path] = typer.Option([], "--tune-rule",
                                         help="A tune-rule run: its best rule joins the rules; "
                                              "repeat."),
    out: Path = typer.Option(..., "--out", help="Folder to write."),
    horizon: int = typer.Option(26, help="Periods per episode."),
    start_users: str = typer.Option("test", help="Predictor split of the start users."),
    max_users: int = typer.Option(0, help="Evaluate the first N start users only (0: all)."),
    replicates: int = typer.Option(1, help="Simulated copies of each start user."),
    min_rollouts: int = typer.Option(20_000, help="Episodes per policy at least (raises "
                                                  "--replicates; ~+-1% paired CI; 0: off)."),
    seed: int = typer.Option(0, help="Seed of the common random numbers."),
    true_value: bool = typer.Option(True, help="Also in the true world when truth/ exists."),
    stochastic: bool = typer.Option(False, help="Sample trained models' actions."),
    threads: int = typer.Option(1, help="Torch intra-op threads (0: torch's default)."),
    room: Path | None = typer.Option(None, "--room", help="A `nudgegym room` run of the same "
                                     "shop: its observable ceiling joins the table."),
) -> None:
    """Evaluate policies with common random numbers; write evaluation.json/.md and plots."""
    from agents.evaluate import EvaluateConfig, evaluate_policies

    _threads(threads)
    cfg = EvaluateConfig(horizon=horizon, start_users=start_users, max_users=max_users,
                         replicates=replicates, min_rollouts=min_rollouts, seed=seed,
                         true_value=true_value,
                         stochastic=stochastic)
    policy = list(policy) + [str(t) for t in tune_rule]
    from agents.evaluate import markdown_table

    check_pair(predictor, data)
    if room is not None:
        from agents.evaluate import room_summary

        room_summary(room)  # a bad --room fails before the rollouts
    with output_folder(out) as tmp:
        write_run_config(tmp, "evaluate", {"predictor": str(predictor), "data": str(data),
                                           "policies": policy, "room": str(room) if room else
                                           None, **cfg.__dict__}, seed)
        result = evaluate_policies(predictor, data, policy, tmp, cfg, room=room)
    typer.echo(markdown_table(result))


@bench_app.command("train")
def bench_train_cmd(
    predictor: Path | None = typer.Option(None, help="Predictor run; default: a 1-epoch GRU "
                                                     "on a generated shop."),
    data: Path | None = typer.Option(None, help="Dataset folder (with --predictor)."),
    algos: str = typer.Option("ppo,dqn", help="Comma-separated algorithms."),
    timesteps: int = typer.Option(131_072, help="Env steps per algorithm."),
    n_envs: int | None = typer.Option(None, help="Simultaneous users (default: the YAML's)."),
    device: str = typer.Option("cpu", help="Device of the policy."),
    threads: int = typer.Option(1, help="Torch intra-op threads."),
    seed: int = typer.Option(0, help="Seed."),
    env: str = typer.Option("learned", help="learned or world. With world (or --reference): "
                                            "time-to-value and TRUE value vs the reference."),
    reference: str | None = typer.Option(None, help="The rule to beat (rule:... or a tune-rule "
                                                    "run); default with --env world: tuned "
                                                    "here on the predictor's train users."),
    seeds: str | None = typer.Option(None, help="Comma-separated training seeds (default: "
                                                "--seed)."),
    reward: str = typer.Option("sampled", help="Training reward: sampled or expected."),
    warm_start: bool = typer.Option(False, "--warm-start",
                                    help="Start every policy from the reference (--env "
                                         "world: improved by rollouts first; PPO: cloned; "
                                         "DQN: its fitted Q-values)."),
    config: Path | None = typer.Option(None, "--config", help="YAML overriding hyperparameters."),
    eval_data: Path | None = typer.Option(None, help="Generated dataset (same world) whose "
                                                     "users start the final TRUE evaluation."),
    eval_users: int = typer.Option(20_000, help="Users of the final TRUE evaluation."),
    static_features: bool = typer.Option(False, "--static-features/--no-static-features",
                                         help="Policies also read the users table's static "
                                              "columns."),
    penalty: float = typer.Option(0.0, "--penalty", help="Reward penalty per unit of an "
                                  "ensemble predictor's spread (learned shop; 0: none)."),
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """SB3 training throughput (env steps per second) on the batched learned shop; with
    ``--env world`` or ``--reference``: TRUE value against the best (tuned) rule over seeds,
    paired CIs, and time-to-value (wall time until a policy first passes the reference).

    ``per CPU-s`` divides by the process's CPU time: on shared cores the wall-clock rate
    understates what the code does on a core of its own.
    """
    if out is not None:
        check_out_folder(out)
    from agents.train import TrainConfig, train_policy

    _threads(threads)
    if (predictor is None) != (data is None):
        raise ValueError("give both --predictor and --data, or neither (a generated shop)")
    algo_list = [a.strip() for a in algos.split(",") if a.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if predictor is None:
            predictor, data = _bench_shop(Path(tmp), seed)
        if env == "world" or reference is not None:
            args = (algo_list, timesteps, n_envs, device, env, reference, seeds, seed, reward,
                    warm_start, config, eval_data, eval_users, static_features, penalty)
            if out is None:
                _bench_value(predictor, data, Path(tmp) / "runs", *args, None)
            else:
                with output_folder(out) as staged:  # the runs live inside --out
                    _bench_value(predictor, data, staged / "runs", *args, staged)
            return
        typer.echo(f"{'algo':<14}{'n_envs':>8}{'steps':>10}{'steps/s':>10}{'per CPU-s':>11}")
        for algo in algo_list:
            cfg = TrainConfig(algo=algo, timesteps=timesteps, n_envs=n_envs, seed=seed,
                              device=device, eval_every=10 * timesteps, eval_users=64,
                              progress=False, reward=reward)
            m = train_policy(predictor, data, Path(tmp) / f"run_{algo}", cfg,
                             hyperparams=config)
            per_cpu = m["timesteps"] / m["cpu_seconds"]
            rows.append({"algo": algo, "n_envs": m["n_envs"], "timesteps": m["timesteps"],
                         "steps_per_second": m["fps"], "steps_per_cpu_second": per_cpu,
                         "threads": threads, "device": m["device"]})
            typer.echo(f"{algo:<14}{m['n_envs']:>8}{m['timesteps']:>10,}{m['fps']:>10,.0f}"
                       f"{per_cpu:>11,.0f}")
    if out is not None:
        with output_folder(out) as tmp:
            write_run_config(tmp, "bench train", {"predictor": str(predictor),
                                                  "data": str(data), "algos": algos,
                                                  "timesteps": timesteps, "n_envs": n_envs,
                                                  "device": device, "threads": threads}, seed)
            write_json(tmp / "bench.json", {"unit": "env steps per second", "rows": rows})


def _bench_value(predictor: Path, data: Path, runs: Path, algos: list[str], timesteps: int,
                 n_envs: int | None, device: str, env: str, reference: str | None,
                 seeds: str | None, seed: int, reward: str, warm_start: bool,
                 config: Path | None, eval_data: Path | None, eval_users: int,
                 static_features: bool, penalty: float, out: Path | None) -> None:
    """The time-to-value / TRUE-value bench (:func:`agents.bench_rl.bench_rl`)."""
    import time

    from agents.bench_rl import bench_rl, bench_table
    from agents.train import TrainConfig
    from predictors.io import write_text

    seed_list = [int(s) for s in seeds.split(",")] if seeds else [seed]
    t0 = time.perf_counter()
    tune_seconds = 0.0
    if reference is None:
        from agents.tune_rule import TuneConfig, run_tune_rule

        run_tune_rule(data, runs / "tune", predictor, TuneConfig(env="world" if env == "world"
                                                                 else "sim", seed=seed))
        reference, tune_seconds = str(runs / "tune"), time.perf_counter() - t0
        typer.echo(f"tuned the reference rule in {tune_seconds:.0f} s -> {reference}")
    cfg = TrainConfig(timesteps=timesteps, env=env, n_envs=n_envs, device=device,
                      progress=False, reward=reward, static_features=static_features,
                      penalty=penalty)
    result = bench_rl(predictor, data, runs, reference, cfg, seed_list, algos,
                      hyperparams=config, eval_data=eval_data, eval_users=eval_users,
                      warm_start=warm_start)
    result["tune_seconds"] = tune_seconds
    table = bench_table(result)
    typer.echo(table)
    if out is not None:  # a staging folder (see bench_train_cmd)
        write_run_config(out, "bench train", {
            "predictor": str(predictor), "data": str(data), "algos": algos,
            "timesteps": timesteps, "env": env, "reference": reference, "seeds": seed_list,
            "reward": reward, "warm_start": warm_start, "static_features": static_features,
            "penalty": penalty, "config": str(config) if config else None,
            "eval_data": str(eval_data) if eval_data else None, "eval_users": eval_users},
            seed)
        write_json(out / "bench.json", result)
        write_text(out / "bench.md", table)


def _bench_shop(root: Path, seed: int) -> tuple[Path, Path]:
    """A generated shop (2000 users x 16 periods) and a 1-epoch GRU on it."""
    from predictors import GenerateConfig, build_panel, generate, load_users, open_dataset
    from predictors.models import BehaviorPredictor, PredictorConfig

    data = generate(GenerateConfig(n_users=2000, n_periods=16, seed=seed), root / "shop")
    ds = open_dataset(data)
    pred = BehaviorPredictor(PredictorConfig(family="gru", epochs=1, device="cpu", seed=seed))
    pred.fit(build_panel(ds), ds.spec.action_names, users=load_users(ds), progress=False)
    pred.save(root / "pred")
    return root / "pred", data
