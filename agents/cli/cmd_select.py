"""``nudgegym select``: the selection gate on a dataset's logged decisions.

Ranks candidate policies by a high-confidence lower bound of their gain over a baseline (the
logging policy, or a rule), recommends one only if that bound is above 0, and otherwise says to
keep the baseline (:mod:`agents.ope.selection`). Writes ``selection.json`` and
``selection.png``; ``nudgegym export --require-selection FILE`` refuses a policy the gate did
not pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from agents.cli._app import app, output_folder
from predictors.io import write_run_config


@app.command("select")
def select_cmd(
    data: Path = typer.Argument(..., help="Dataset folder with logged propensities."),
    policy: list[str] = typer.Option(..., "--policy",
                                     help="Candidate: rule:NAME[:...], an ONNX export folder or "
                                          "a train-policy run folder (repeatable)."),
    baseline: str = typer.Option("logging", "--baseline",
                                 help="logging (the logged policy itself) or rule:NAME[:...]."),
    reward: str = typer.Option("net", help="Reward per period: net, revenue or purchase."),
    horizon: int | None = typer.Option(None, "--horizon",
                                       help="Use the first H logged periods (default: all)."),
    estimator: str = typer.Option("dr-lin", help="dr-lin (unbiased with known propensities), "
                                  "wdr-lin (its self-normalised form: consistent, steadier "
                                  "when few users carry the weight), or the model-based "
                                  "fqe-lin, mis, mdr."),
    confidence: float = typer.Option(0.95, help="One-sided confidence, over all candidates."),
    q_shrinkage: float = typer.Option(1.0, "--q-shrinkage",
                                      help="Penalty (in rows) pulling each action's linear Q "
                                           "toward the pooled one; larger steadies rarely "
                                           "logged actions (dr-lin / wdr-lin stay unbiased / "
                                           "consistent whatever the Q)."),
    ridge: float = typer.Option(1.0, "--ridge", help="Ridge penalty (in rows) of the pooled Q "
                                "and the state-ratio regressions."),
    boot: int = typer.Option(400, "--boot", help="Bootstrap resamples (every model refitted)."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    memory_limit: str = typer.Option("4GB", help="DuckDB memory cap for the panel."),
    out: Path = typer.Option(..., "--out", help="Folder: config.json, selection.json, "
                             "selection.png."),
) -> None:
    """Recommend a candidate only if the logs vouch for its gain over the baseline."""
    from agents.loading import load_policy
    from agents.ope.panel import logged_data_from_panel
    from agents.ope.selection import SelectionConfig, select_policy, write_selection
    from predictors import build_panel, observation_names, open_dataset

    if baseline != "logging" and not baseline.startswith("rule:"):
        raise ValueError(f"--baseline must be 'logging' or rule:NAME; got {baseline!r}")
    if horizon is not None and horizon < 1:
        raise ValueError(f"--horizon must be >= 1; got {horizon}")
    from agents.ope.marginal import MarginalConfig

    if not q_shrinkage >= 0:
        raise ValueError(f"--q-shrinkage must be >= 0 (rows); got {q_shrinkage}")
    if not ridge > 0:
        raise ValueError(f"--ridge must be > 0 (rows); got {ridge}")
    config = SelectionConfig(estimator=estimator, confidence=confidence, n_boot=boot, seed=seed,
                             model=MarginalConfig(alpha=ridge, shrinkage=q_shrinkage))
    with output_folder(out) as tmp:
        write_run_config(tmp, "select", {"data": str(data), "policy": policy, "baseline": baseline,
                                         "reward": reward, "horizon": horizon,
                                         "estimator": estimator, "confidence": confidence,
                                         "q_shrinkage": q_shrinkage, "ridge": ridge,
                                         "boot": boot, "memory_limit": memory_limit}, seed=seed)
        ds = open_dataset(data)
        logged = logged_data_from_panel(build_panel(ds, memory_limit=memory_limit), ds.spec,
                                        reward=reward)
        if horizon is not None:
            assert logged.time_step is not None
            logged = logged.subset(logged.time_step < logged.time_step.min() + horizon)
        names = observation_names()
        cands = {text: load_policy(text, ds.spec, names, data) for text in policy}
        base = "logging" if baseline == "logging" else (baseline, load_policy(baseline, ds.spec,
                                                                              names, data))
        sel = select_policy(logged, cands, base, config)
        periods = len(np.unique(logged.time_step))
        typer.echo(f"{sel.config['n_users']:,} users x {periods} periods; gain per user over "
                   f"{sel.baseline} ({estimator}, paired bootstrap of {boot}, one-sided "
                   f"{confidence:.0%} lower bounds, {sel.config['correction']})")
        typer.echo(f"{'candidate':<28} {'estimate':>10} {'gain':>10} {'lower bound':>12} passes")
        for c in sel.candidates:
            typer.echo(f"{c['policy'][:28]:<28} {c['estimate']:10.3f} {c['gain']:+10.3f} "
                       f"{c['gain_low']:+12.3f} {'yes' if c['passes'] else 'no'}")
        typer.echo(sel.decision)
        path = write_selection(sel, tmp)
    typer.echo(f"wrote {out / path.name}")
