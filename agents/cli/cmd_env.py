"""``nudgegym bench env``: learned-shop throughput, batched vs naive, per predictor family."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from agents.cli._app import bench_app
from predictors.io import write_json, write_run_config


@bench_app.command("env")
def bench_env_cmd(
    data: Path | None = typer.Option(None, help="Dataset folder; default: a generated shop."),
    families: str = typer.Option("logistic,mlp,gru,lstm,transformer",
                                 help="Comma-separated predictor families."),
    n_envs: str = typer.Option("64,1024,4096,16384", help="Comma-separated batch sizes."),
    naive: bool = typer.Option(True, help="Also time the naive path (ShopEnv in DummyVecEnv)."),
    min_seconds: float = typer.Option(1.0, help="Minimum timing window per measurement."),
    device: str = typer.Option("cpu", help="Device of the predictor's forward passes."),
    seed: int = typer.Option(0, help="Seed."),
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """User-steps per second of the batched VecEnv, the naive path and the bare forward pass.

    Each family is fitted for one epoch (throughput does not depend on fit quality).
    """
    from envs.bench import bench_env
    from envs.shop_env import load_learned_shop
    from predictors import build_panel, load_users, open_dataset
    from predictors.models import BehaviorPredictor, PredictorConfig

    fams = [f.strip() for f in families.split(",") if f.strip()]
    sizes = [int(s) for s in n_envs.split(",") if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            from predictors.synthetic.generate import GenerateConfig, generate

            data = generate(GenerateConfig(n_users=2000, n_periods=16, seed=seed),
                            Path(tmp) / "shop")
        ds = open_dataset(data)
        panel = build_panel(ds)
        users = load_users(ds)
        rows = []
        header = f"{'family':<12}{'N':>7}{'batched/s':>12}{'naive/s':>10}{'ratio':>7}{'forward/s':>12}"
        typer.echo(header)
        for fam in fams:
            pred = BehaviorPredictor(PredictorConfig(family=fam, epochs=1, device=device,
                                                     seed=seed))
            pred.fit(panel, ds.spec.action_names, users=users, progress=False)
            shop = load_learned_shop(pred, data, start_users="all")
            for n in sizes:
                r = bench_env(shop, n, naive=naive, min_seconds=min_seconds, seed=seed)
                r["family"] = fam
                rows.append(r)
                nv = f"{r['naive']:>10,.0f}{r['speedup']:>7.0f}" if naive else f"{'-':>10}{'-':>7}"
                typer.echo(f"{fam:<12}{n:>7}{r['batched']:>12,.0f}{nv}{r['forward']:>12,.0f}")
    if out is not None:
        write_run_config(out, "bench env", {"data": str(data) if data else None,
                                            "families": fams, "n_envs": sizes, "naive": naive,
                                            "device": device}, seed)
        write_json(out / "bench.json", {"unit": "user-steps per second", "rows": rows})
