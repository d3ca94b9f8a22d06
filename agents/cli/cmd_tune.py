"""``nudgegym tune-rule``: search the tuned-rule family in the true world or the learned shop."""

from __future__ import annotations

from pathlib import Path

import typer

from agents.cli._app import app, output_folder
from predictors.io import write_run_config


@app.command("tune-rule")
def tune_rule_cmd(
    data: Path = typer.Option(..., help="Dataset folder (a generated one for --env world)."),
    out: Path = typer.Option(..., "--out", help="Run folder to write."),
    predictor: Path | None = typer.Option(None, help="Predictor run: its train users are the "
                                                     "start users (needed for --env sim)."),
    env: str = typer.Option("world", help="world (true synthetic world) or sim (learned shop)."),
    budget: int = typer.Option(31_200_000, help="User-periods the search may simulate."),
    users: int = typer.Option(4000, help="Start users per candidate (the same for all)."),
    method: str = typer.Option("cem", help="cem (cross-entropy method) or grid."),
    horizon: int = typer.Option(26, help="Periods per episode."),
    start_users: str = typer.Option("train", help="Predictor split of the start users."),
    seed: int = typer.Option(0, help="Seed of the search and the common random numbers."),
    support_window: int = typer.Option(
        0, help="--env sim: admit only candidates whose simulated sends stay in the log's "
                "support: windows of this many consecutive actions the log holds (0: off)."),
    support_min_count: int = typer.Option(30, help="Logged windows a pattern needs to count "
                                                   "as supported."),
    support_min_share: float = typer.Option(0.95, help="Share of a candidate's windows that "
                                                       "must be supported."),
    progress: bool = typer.Option(True, help="Progress bar over candidates."),
) -> None:
    """Tune rule:tuned's thresholds, actions and gaps; write tune.json and best_rule.txt."""
    from agents.tune_rule import TuneConfig, run_tune_rule

    cfg = TuneConfig(env=env, budget=budget, n_users=users, horizon=horizon, method=method,
                     start_users=start_users if predictor is not None else "all", seed=seed,
                     support_window=support_window, support_min_count=support_min_count,
                     support_min_share=support_min_share)
    with output_folder(out) as tmp:
        write_run_config(tmp, "tune-rule", {"data": str(data), "predictor": str(predictor)
                                            if predictor else None, **cfg.__dict__}, seed)
        r = run_tune_rule(data, tmp, predictor, cfg, progress=progress)
    v, d = r["value"], r["vs_default"]
    typer.echo(f"best of {r['evaluations']} candidates ({r['user_periods']:,} user-periods, "
               f"{r['seconds']:.0f} s) in {env}: {r['rule']}\n"
               f"  mean return {v['mean']:.2f} [{v['low']:.2f}, {v['high']:.2f}]; vs "
               f"rule:email_capped {d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] -> {out}")
