"""``nudgegym generate``: the synthetic shop (and its benchmark)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd
import typer

from agents.cli._app import app, bench_app, output_folder
from predictors import GenerateConfig, generate, load_world
from predictors.io import check_out_folder, write_json, write_run_config


def _summary(folder: Path, seconds: float, cfg: GenerateConfig) -> dict:
    import pyarrow.parquet as pq

    rows = {name: pq.ParquetFile(folder / f"{name}.parquet").metadata.num_rows
            for name in ("events", "interventions", "users")}
    rows["truth/outcomes"] = pq.ParquetFile(folder / "truth" / "outcomes.parquet").metadata.num_rows
    return {"users": cfg.n_users, "periods": cfg.n_periods, "logging": cfg.logging,
            "seed": cfg.seed, "seconds": round(seconds, 3),
            "user_periods_per_second": round(cfg.n_users * cfg.n_periods / seconds, 1),
            "rows": rows}


@app.command("generate")
def generate_cmd(
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    users: int = typer.Option(10_000, "--users", help="Number of users."),
    periods: int = typer.Option(52, "--periods", help="Logged weekly periods."),
    logging: str = typer.Option("campaign", "--logging", help="campaign or uniform."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace a dataset already in --out."),
    export_crm: Path | None = typer.Option(
        None, "--export-crm", help="Also write DIR/orders.csv, DIR/sends.csv and "
        "DIR/catalog.yaml: the shop's logs as a real shop would export them."),
    world: str = typer.Option("default", "--world",
                              help="World: a preset (default, null, inert, tired) or a "
                                   ".json/.yaml file with the schema of truth/world.json."),
) -> None:
    """Simulate the synthetic shop: a dataset in the data contract plus truth/."""
    cfg = GenerateConfig(n_users=users, n_periods=periods, logging=logging, seed=seed,
                         world=load_world(world))
    with output_folder(out, replace=overwrite) as tmp:
        t0 = time.perf_counter()
        generate(cfg, tmp, progress=True)
        summary = _summary(tmp, time.perf_counter() - t0, cfg)
        write_run_config(tmp, "generate", {"users": users, "periods": periods,
                                           "logging": logging, "seed": seed, "world": world,
                                           "out": str(out)}, seed=seed)
        write_json(tmp / "generate.json", summary)
    typer.echo(f"wrote {out}: {summary['rows']['events']} events, "
               f"{summary['rows']['interventions']} interventions, {users} users "
               f"({summary['seconds']:.1f} s)")
    if export_crm is not None:
        from predictors.synthetic.crm import export_crm as write_crm

        paths = write_crm(out, export_crm)
        typer.echo(f"wrote {paths['orders']}, {paths['sends']} and {paths['catalog']}")


@bench_app.command("generate")
def bench_generate_cmd(
    users: int = typer.Option(100_000, "--users", help="Number of users."),
    periods: int = typer.Option(52, "--periods", help="Logged weekly periods."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    out: Path | None = typer.Option(None, "--out", help="Write DIR/bench.json."),
) -> None:
    """Time a full generation (dataset + truth) into a temporary folder."""
    if out is not None:
        check_out_folder(out)
    cfg = GenerateConfig(n_users=users, n_periods=periods, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate(cfg, Path(tmp) / "data", progress=True)
        summary = _summary(Path(tmp) / "data", time.perf_counter() - t0, cfg)
    table = pd.DataFrame([{k: summary[k] for k in ("users", "periods", "seconds",
                                                    "user_periods_per_second")}])
    typer.echo(table.to_string(index=False))
    if out is not None:
        with output_folder(out) as tmp:
            write_run_config(tmp, "bench generate", {"users": users, "periods": periods,
                                                     "seed": seed}, seed=seed)
            write_json(tmp / "bench.json", summary)
