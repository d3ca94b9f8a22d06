"""``nudgegym sweep`` and ``nudgegym bench sweep``."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import typer

from agents.cli._app import app, bench_app, output_folder, resumable_output
from predictors.io import write_json, write_run_config


def _executor(executor: str, workers: int, address: str | None):
    from predictors.executors import make_executor

    return make_executor(executor, workers, address)


@app.command("sweep")
def sweep_cmd(
    config: Path = typer.Option(..., "--config", help="Sweep file (YAML)."),
    out: Path = typer.Option(..., "--out", help="Sweep folder (resumes when it has jobs)."),
    executor: str = typer.Option("serial", help="serial, local (process pool) or ray."),
    workers: int = typer.Option(2, help="Processes (local) or CPUs of a local Ray."),
    address: str | None = typer.Option(None, help="ray: join a cluster (auto or HOST:PORT)."),
    search: str | None = typer.Option(None, help="grid, random or optuna (default: the "
                                                 "file's search.method)."),
    trials: int | None = typer.Option(None, help="random / optuna: configs to try."),
    progress: bool = typer.Option(True, help="Progress bar over jobs."),
) -> None:
    """Train and evaluate every (config, seed) of a sweep file; write sweep.json/.md, plots."""
    from agents.sweep import load_sweep, run_sweep
    from agents.sweep.results import markdown

    cfg = load_sweep(config)
    if search is not None and search not in ("grid", "random", "optuna"):
        raise ValueError(f"--search must be grid, random or optuna; got {search!r}")
    # a folder that already holds this sweep's job list is continued (finished jobs skipped)
    resume = (out / "jobs.json").is_file()
    with resumable_output(out, resume=resume):
        ex = _executor(executor, workers, address)
        write_run_config(out, "sweep", {"config": str(config), "executor": executor,
                                        "workers": workers, "address": address,
                                        "search": search or cfg.method,
                                        "trials": trials if trials is not None else cfg.trials,
                                        "sweep": cfg.raw})
        try:
            summary = run_sweep(cfg, out, ex, method=search, trials=trials, progress=progress)
        finally:
            ex.close()
    typer.echo(markdown(summary))
    if summary["n_failed"]:
        typer.echo(f"{summary['n_failed']} job(s) failed; run the same command again to retry "
                   "them (finished jobs are skipped)", err=True)


def _bench_sweep_file(root: Path, jobs: int, timesteps: int) -> Path:
    """A generated shop, a 1-epoch predictor, and a sweep file of ``jobs`` equal jobs."""
    import yaml

    from agents.cli.cmd_policy import _bench_shop

    pred, data = _bench_shop(root, seed=0)
    sweep = {"shop": {"data": str(data), "predictor": str(pred)},
             "train": {"algo": "ppo", "timesteps": timesteps, "n_envs": 64, "eval_users": 64,
                       "n_steps": 16, "batch_size": 256, "n_epochs": 4},
             "grid": {}, "seeds": list(range(jobs)),
             "evaluation": {"users": 200, "horizon": 16, "rules": ["rule:never"]}}
    path = root / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


@bench_app.command("sweep")
def bench_sweep_cmd(
    jobs: int = typer.Option(8, help="Equal jobs (one config, this many seeds)."),
    timesteps: int = typer.Option(8192, help="PPO env steps per job."),
    workers: int = typer.Option(2, help="Processes (local) and CPUs (ray)."),
    executors: str = typer.Option("serial,local,ray", help="Comma-separated executors."),
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """Wall time of the same sweep per executor, and its ratio to serial (start-up included)."""
    import json

    from agents.sweep import load_sweep, run_sweep

    names = [e.strip() for e in executors.split(",") if e.strip()]
    rows = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nudgegym-bench-sweep-") as tmp:
        path = _bench_sweep_file(Path(tmp), jobs, timesteps)
        cfg = load_sweep(path)
        metrics = {}
        for name in names:
            t0 = time.perf_counter()
            ex = _executor(name, workers, None)
            try:
                summary = run_sweep(cfg, Path(tmp) / f"out_{name}", ex, progress=False)
            except Exception as e:  # report the others
                typer.echo(f"{name}: failed: {type(e).__name__}: {e}", err=True)
                continue
            finally:
                ex.close()
            wall = time.perf_counter() - t0
            metrics[name] = json.dumps(summary, sort_keys=True)
            rows.append({"executor": name, "workers": 1 if name == "serial" else workers,
                         "seconds": wall, "jobs_done": summary["n_done"]})
    base = next((r["seconds"] for r in rows if r["executor"] == "serial"), None)
    typer.echo(f"{jobs} jobs x {timesteps:,} PPO steps; load average before: "
               f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    typer.echo(f"{'executor':<10}{'workers':>8}{'seconds':>10}{'x serial':>10}{'done':>6}")
    for r in rows:
        r["ratio_to_serial"] = r["seconds"] / base if base else None
        ratio = f"{r['ratio_to_serial']:.2f}" if base else "-"
        typer.echo(f"{r['executor']:<10}{r['workers']:>8}{r['seconds']:>10.1f}{ratio:>10}"
                   f"{r['jobs_done']:>6}")
    same = len(set(metrics.values())) == 1
    typer.echo("sweep.json metrics identical across executors: " + ("yes" if same else "NO"))
    if out is not None:
        with output_folder(out) as staged:
            write_run_config(staged, "bench sweep", {"jobs": jobs, "timesteps": timesteps,
                                                     "workers": workers, "executors": names})
            write_json(staged / "bench.json", {"bench": "sweep", "load_average": list(load),
                                               "identical_metrics": same, "rows": rows})
