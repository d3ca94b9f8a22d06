"""Data commands: ``validate``, ``inspect`` and the ``bench panel`` benchmark."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import typer
from tqdm import tqdm

from agents.cli._app import app, bench_app, output_folder
from predictors.io import check_out_folder, write_json, write_run_config
from predictors.panel import dataset_summary
from predictors.panel_bench import run_panel_job, write_random_dataset
from predictors.validate import validate_dataset


@app.command("validate")
def validate_cmd(
    folder: Path = typer.Argument(..., help="Dataset folder."),
    memory_limit: str = typer.Option("2GB", help="DuckDB memory cap (spills beyond it)."),
    out: Path | None = typer.Option(None, "--out", help="Write problems.json here."),
) -> None:
    """Check a dataset folder against the data contract; print every problem.

    Exit code 1 when there is at least one error, 0 otherwise (warnings allowed).
    """
    problems = validate_dataset(folder, memory_limit=memory_limit)
    for p in problems:
        typer.echo(str(p), err=True)
    n_err = sum(p.severity == "error" for p in problems)
    n_warn = len(problems) - n_err
    typer.echo(f"{n_err} errors, {n_warn} warnings", err=bool(n_err))
    if out is not None:
        with output_folder(out) as tmp:
            write_run_config(tmp, "validate", {"folder": str(folder),
                                               "memory_limit": memory_limit})
            write_json(tmp / "problems.json", {"folder": str(folder), "errors": n_err,
                                               "warnings": n_warn,
                                               "problems": [asdict(p) for p in problems]})
    if n_err:
        raise typer.Exit(code=1)


@app.command("inspect")
def inspect_cmd(
    folder: Path = typer.Argument(..., help="Dataset folder."),
    memory_limit: str = typer.Option("4GB", help="DuckDB memory cap (spills beyond it)."),
    out: Path | None = typer.Option(None, "--out", help="Write summary.json here."),
) -> None:
    """Summarise a dataset: users, events, periods, purchase rate, revenue, actions."""
    if out is not None:
        from predictors.io import check_replaceable

        check_replaceable(out)
    s = dataset_summary(folder, memory_limit=memory_limit)
    lines = [
        f"users                {s['users']:,}",
        f"periods              {s['periods']} x {s['period']} "
        f"(origin {s['origin'] or 'first day'}); events {s['first_event']} .. {s['last_event']}",
        f"user-periods         {s['user_periods']:,} ({s['active_user_periods']:,} active)",
        "events by type       " + ", ".join(f"{k}={v:,}" for k, v in s["event_types"].items()),
        f"purchase rate        {s['purchase_rate']:.4f} per user-period",
        f"revenue              total {s['revenue_total']:,.2f}, "
        f"per user {s['revenue_per_user']:,.2f}",
    ]
    actions = s["actions"]
    if actions:
        lines.append("actions              user-periods  logged  propensity min..max")
        for name, a in actions.items():
            prop = ("-" if a["propensity_min"] is None
                    else f"{a['propensity_min']:.4g}..{a['propensity_max']:.4g}")
            lines.append(f"  {name:<18} {a['user_periods']:>12,}  {a['logged']:>6,}  {prop}")
    else:
        lines.append("actions              none logged")
    typer.echo("\n".join(lines))
    if out is not None:
        with output_folder(out) as tmp:
            write_run_config(tmp, "inspect", {"folder": str(folder),
                                              "memory_limit": memory_limit})
            write_json(tmp / "summary.json", {"folder": str(folder), **s})


@bench_app.command("panel")
def bench_panel_cmd(
    events: int = typer.Option(10_000_000, "--events", help="Events in the random log."),
    memory_limit: str = typer.Option("4GB", "--memory-limit", help="DuckDB memory cap."),
    threads: int | None = typer.Option(None, help="DuckDB threads (default: all cores)."),
    validate: bool = typer.Option(False, help="Time validation + panel instead of the panel."),
    seed: int = typer.Option(0, help="Seed of the random log."),
    partitions: int = typer.Option(0, help="Also build it in this many user partitions "
                                           "and compare with the single build (0: off)."),
    workers: int = typer.Option(2, help="With --partitions: processes / Ray CPUs."),
    executor: str = typer.Option("local", help="With --partitions: serial, local or ray."),
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """Build the panel of a random log in a subprocess: seconds, events/s, peak RSS.

    With ``--partitions N`` it times instead, in this process, the single build against the
    partitioned build (partitioning included) and checks that both give the same panel.
    """
    if out is not None:
        check_out_folder(out)
    if events < 1:
        raise ValueError(f"--events must be >= 1; got {events}")
    if partitions:
        _bench_partitions(events, memory_limit, threads, seed, partitions, workers, executor,
                          out)
        return
    with tempfile.TemporaryDirectory(prefix="nudgegym-bench-panel-") as tmp:
        with tqdm(total=2, desc="bench panel", unit="step", file=None, leave=False) as bar:
            bar.set_postfix_str(f"writing {events:,} events")
            folder, n_iv = write_random_dataset(Path(tmp) / "data", events, seed=seed)
            bar.update()
            bar.set_postfix_str("building panel")
            r = run_panel_job(folder, memory_limit=memory_limit, threads=threads,
                              validate=validate, n_events=events, n_interventions=n_iv)
            bar.update()
    header = (f"{'events':>12} {'interventions':>13} {'seconds':>8} {'events/s':>12} "
              f"{'peak RSS MB':>11} {'import RSS MB':>13} {'panel rows':>11} {'mem limit':>9}")
    row = (f"{r.events:>12,} {r.interventions:>13,} {r.seconds:>8.2f} {r.events_per_s:>12,.0f} "
           f"{r.peak_rss_mb:>11,.0f} {r.baseline_rss_mb:>13,.0f} {r.panel_rows:>11,} "
           f"{r.memory_limit:>9}")
    typer.echo(header + "\n" + row + (" (validation included)" if validate else ""))
    if out is not None:
        with output_folder(out) as tmp:
            write_run_config(tmp, "bench panel", {"events": events,
                                                  "memory_limit": memory_limit,
                                                  "threads": threads, "validate": validate},
                             seed=seed)
            write_json(tmp / "bench.json", {"bench": "panel", "results": [asdict(r)]})


def _warm_up(i: int) -> int:
    import predictors.panel  # noqa: F401  (what a partition job imports)

    return i


def _bench_partitions(events: int, memory_limit: str, threads: int | None, seed: int,
                      partitions: int, workers: int, executor: str, out: Path | None) -> None:
    """Single build vs partitioned build of the same random log, wall times and equality."""
    import os
    import time

    import pandas as pd

    from predictors import build_panel
    from predictors.executors import make_executor, map_ordered
    from predictors.panel_partition import build_panel_partitioned

    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nudgegym-bench-panel-") as tmp:
        folder, n_iv = write_random_dataset(Path(tmp) / "data", events, seed=seed)
        t0 = time.perf_counter()
        single = build_panel(folder, memory_limit=memory_limit, threads=threads,
                             validate=False)
        t_single = time.perf_counter() - t0
        ex = make_executor(executor, workers)
        try:
            t0 = time.perf_counter()
            map_ordered(ex, _warm_up, range(workers))  # start the workers (imports)
            t_start = time.perf_counter() - t0
            t0 = time.perf_counter()
            parts = build_panel_partitioned(folder, partitions=partitions, executor=ex,
                                            memory_limit=memory_limit, validate=False,
                                            workdir=tmp)
            t_parts = time.perf_counter() - t0
        finally:
            ex.close()
        try:
            pd.testing.assert_frame_equal(parts, single)
            same = True
        except AssertionError:
            same = False
    ratio = t_parts / t_single
    ratio_all = (t_parts + t_start) / t_single
    typer.echo(f"{events:,} events, {n_iv:,} interventions, {len(single):,} panel rows; load "
               f"average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
               f"{os.cpu_count()} CPUs")
    typer.echo(f"{'build':<34}{'seconds':>9}{'x single':>10}")
    typer.echo(f"{'single (DuckDB, all threads)':<34}{t_single:>9.2f}{1.0:>10.2f}")
    label = f"{partitions} partitions, {executor} x{workers}"
    typer.echo(f"{label:<34}{t_parts:>9.2f}{ratio:>10.2f}")
    typer.echo(f"{'  + worker start-up':<34}{t_parts + t_start:>9.2f}{ratio_all:>10.2f}")
    typer.echo("identical panels: " + ("yes" if same else "NO"))
    if out is not None:
        with output_folder(out) as staged:
            write_run_config(staged, "bench panel", {
                "events": events, "memory_limit": memory_limit, "threads": threads,
                "partitions": partitions, "workers": workers, "executor": executor}, seed=seed)
            write_json(staged / "bench.json", {"bench": "panel-partitions", "events": events,
                                            "interventions": n_iv, "panel_rows": len(single),
                                            "load_average": list(load), "single_seconds": t_single,
                                            "partitioned_seconds": t_parts, "ratio": ratio,
                                            "worker_start_seconds": t_start,
                                            "ratio_with_start": ratio_all,
                                            "identical": same})
    if not same:
        raise typer.Exit(code=1)
