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
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """Build the panel of a random log in a subprocess: seconds, events/s, peak RSS."""
    if out is not None:
        check_out_folder(out)
    if events < 1:
        raise ValueError(f"--events must be >= 1; got {events}")
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
