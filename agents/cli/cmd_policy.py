"""``nudgegym train-policy``, ``nudgegym evaluate`` and ``nudgegym bench train``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from agents.cli._app import app, bench_app
from predictors.io import write_json, write_run_config


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
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.zip."),
    threads: int = typer.Option(1, help="Torch intra-op threads (0: torch's default)."),
    penalty: float = typer.Option(0.0, "--penalty", help="Reward penalty per unit of an "
                                  "ensemble predictor's disagreement (MOPO-style; 0: none)."),
    progress: bool = typer.Option(True, help="Progress bar."),
) -> None:
    """Train an SB3 policy on the batched learned shop; write model, metrics and curves."""
    from agents.train import TrainConfig, train_policy

    _threads(threads)
    cfg = TrainConfig(algo=algo, timesteps=timesteps, env=env, n_envs=n_envs, horizon=horizon,
                      seed=seed, device=device, eval_every=eval_every, eval_users=eval_users,
                      coupon_gap=coupon_gap, max_contacts=max_contacts, progress=progress,
                      penalty=penalty)
    opts = {"predictor": str(predictor), "data": str(data), "config": str(config) if config
            else None, "resume": resume, "threads": threads, **cfg.__dict__}
    write_run_config(out, "train-policy", opts, seed)
    m = train_policy(predictor, data, out, cfg, hyperparams=config, resume=resume)
    e = m["final_eval"]
    typer.echo(f"{algo}: {m['timesteps']:,} steps at {m['fps'] or 0:,.0f} steps/s; held-out "
               f"mean return {e['mean_return']:.2f} +- {e['ci_half_width']:.2f} -> {out}")


@app.command("evaluate")
def evaluate_cmd(
    predictor: Path = typer.Option(..., help="Predictor run folder."),
    data: Path = typer.Option(..., help="Dataset folder."),
    policy: list[str] = typer.Option(..., "--policy",
                                     help="rule:NAME[:k=v,...] or a train-policy run; repeat."),
    out: Path = typer.Option(..., "--out", help="Folder to write."),
    horizon: int = typer.Option(26, help="Periods per episode."),
    start_users: str = typer.Option("test", help="Predictor split of the start users."),
    max_users: int = typer.Option(0, help="Evaluate the first N start users only (0: all)."),
    replicates: int = typer.Option(1, help="Simulated copies of each start user."),
    seed: int = typer.Option(0, help="Seed of the common random numbers."),
    true_value: bool = typer.Option(True, help="Also in the true world when truth/ exists."),
    stochastic: bool = typer.Option(False, help="Sample trained models' actions."),
    threads: int = typer.Option(1, help="Torch intra-op threads (0: torch's default)."),
) -> None:
    """Evaluate policies with common random numbers; write evaluation.json/.md and plots."""
    from agents.evaluate import EvaluateConfig, evaluate_policies

    _threads(threads)
    cfg = EvaluateConfig(horizon=horizon, start_users=start_users, max_users=max_users,
                         replicates=replicates, seed=seed, true_value=true_value,
                         stochastic=stochastic)
    write_run_config(out, "evaluate", {"predictor": str(predictor), "data": str(data),
                                       "policies": policy, **cfg.__dict__}, seed)
    from agents.evaluate import markdown_table

    result = evaluate_policies(predictor, data, policy, out, cfg)
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
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """SB3 training throughput (env steps per second) on the batched learned shop.

    ``per CPU-s`` divides by the process's CPU time: on shared cores the wall-clock rate
    understates what the code does on a core of its own.
    """
    from agents.train import TrainConfig, train_policy

    _threads(threads)
    if (predictor is None) != (data is None):
        raise ValueError("give both --predictor and --data, or neither (a generated shop)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if predictor is None:
            predictor, data = _bench_shop(Path(tmp), seed)
        typer.echo(f"{'algo':<14}{'n_envs':>8}{'steps':>10}{'steps/s':>10}{'per CPU-s':>11}")
        for algo in [a.strip() for a in algos.split(",") if a.strip()]:
            cfg = TrainConfig(algo=algo, timesteps=timesteps, n_envs=n_envs, seed=seed,
                              device=device, eval_every=10 * timesteps, eval_users=64,
                              progress=False)
            m = train_policy(predictor, data, Path(tmp) / f"run_{algo}", cfg)
            per_cpu = m["timesteps"] / m["cpu_seconds"]
            rows.append({"algo": algo, "n_envs": m["n_envs"], "timesteps": m["timesteps"],
                         "steps_per_second": m["fps"], "steps_per_cpu_second": per_cpu,
                         "threads": threads, "device": m["device"]})
            typer.echo(f"{algo:<14}{m['n_envs']:>8}{m['timesteps']:>10,}{m['fps']:>10,.0f}"
                       f"{per_cpu:>11,.0f}")
    if out is not None:
        write_run_config(out, "bench train", {"predictor": str(predictor), "data": str(data),
                                              "algos": algos, "timesteps": timesteps,
                                              "n_envs": n_envs, "device": device,
                                              "threads": threads}, seed)
        write_json(Path(out) / "bench.json", {"unit": "env steps per second", "rows": rows})


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
