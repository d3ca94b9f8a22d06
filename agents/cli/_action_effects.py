"""CLI side of the per-action effects from logged propensities (used by the ``fidelity`` and
``calibrate-predictor --method action`` commands)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer


def parse_horizons(text: str) -> tuple[int, ...]:
    """``"1,4,8"`` -> ``(1, 4, 8)``; anything else is a BadParameter naming the option."""
    try:
        ks = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        ks = ()
    if not ks or min(ks) < 1:
        raise typer.BadParameter(f"expected comma-separated integers >= 1, e.g. 1,4,8; got "
                                 f"{text!r}", param_hint="--action-horizons")
    return ks


def action_effects_section(predictor: Path, data: Path, ds, panel, start_users: str,
                           horizons: tuple[int, ...], replicates: int, seed: int) -> dict:
    """Run the check over the whole log (from period 1) for ``start_users``, print it and
    return its JSON (``{"skipped": reason}`` on a log without propensities)."""
    import pandas as pd

    from envs.action_effects import ActionEffectConfig, action_effect_fidelity
    from envs.shop_env import load_learned_shop

    last = int(panel["period"].max())
    p = panel["propensity"].to_numpy(dtype=float) if "propensity" in panel else np.array([])
    if not ((p > 0) & (p < 1)).any():  # before building anything
        reason = "the log holds no propensities below 1 (interventions.parquet `propensity`)"
        typer.echo(f"per-action effects: skipped ({reason})")
        return {"skipped": reason}
    truth = None
    if ds.truth_folder is not None and (ds.truth_folder / "outcomes.parquet").is_file():
        truth = pd.read_parquet(ds.truth_folder / "outcomes.parquet",
                                columns=["user_id", "period", "action", "expected_reward"])
    try:
        shop = load_learned_shop(predictor, data, start_period=1, start_users=start_users,
                                 panel=panel)
        res = action_effect_fidelity(shop, panel, last,
                                     ActionEffectConfig(horizons=horizons,
                                                        replicates=replicates, seed=seed),
                                     truth=truth)
    except ValueError as e:  # ConfigError included
        typer.echo(f"per-action effects: skipped ({e})")
        return {"skipped": str(e)}
    typer.echo(f"per-action K-step value from logged propensities ({res['users']} "
               f"{start_users} users, periods {res['start_period']}..{last}; first action "
               "re-weighted by 1/pscore, then the logged actions; 95% bootstrap CIs):")
    for k, block in res["horizons"].items():
        typer.echo(f"  K={k}: {'action':<11}{'rows':>7}{'log (IPW)':>10}{'95% CI':>17}"
                   f"{'sim':>9}{'bias':>9}{'adv. bias':>11}{'95% CI':>17}"
                   + (f"{'true':>9}{'sim-true':>10}" if k == "1" and truth is not None else ""))
        for name, r in block["actions"].items():
            ci = f"{r['log_low']:.3f}..{r['log_high']:.3f}"
            adv = r.get("advantage_bias")
            aci = (f"{r['advantage_bias_low']:+.3f}..{r['advantage_bias_high']:+.3f}"
                   if adv is not None else "-")
            line = (f"       {name:<11}{r['n_rows']:>7}{r['log']:>10.3f}{ci:>17}{r['sim']:>9.3f}"
                    f"{r['bias']:>+9.3f}{'-' if adv is None else f'{adv:+.3f}':>11}{aci:>17}")
            if "true" in r:
                line += f"{r['true']:>9.3f}{r['sim_minus_true']:>+10.3f}"
            typer.echo(line)
    return res


def calibrate_action(predictor: Path, data: Path, out: Path, relative: bool,
                     max_weight: float | None, threads: int) -> None:
    """``calibrate-predictor --method action``: fit, save, print before/after."""
    from agents.cli.cmd_calibrate import bad_option, fit_offsets
    from envs.action_calibration import ActionCalibrationConfig, fit_action_calibration

    try:
        cfg = ActionCalibrationConfig(relative=relative, max_weight=max_weight)
    except ValueError as e:
        raise bad_option(e) from None
    _, report = fit_offsets(
        predictor, data, out, threads, "action",
        {"relative": relative, "max_weight": max_weight}, None,
        lambda pred, panel: fit_action_calibration(pred, data, cfg, panel=panel),
        "action_calibration_")
    typer.echo(f"per-action one-step rates of the validation users ({report['fitted_on']['rows']}"
               " rows, weighted by 1/pscore): simulated before -> after vs logged")
    for name, v in report["per_action"].items():
        b, a = v["before"], v["after"]
        typer.echo(f"  {name:<11} visit {b['visit_sim']:.4f}->{a['visit_sim']:.4f} "
                   f"(log {b['visit_log']:.4f})  purchase {b['purchase_sim']:.4f}->"
                   f"{a['purchase_sim']:.4f} (log {b['purchase_log']:.4f})  offsets "
                   + ", ".join(f"{h} {x:+.3f}" + (f" (SE {v['offset_se'][h]:.3f})"
                                                  if h in v["offset_se"] else "")
                               for h, x in v["offsets"].items()))
    typer.echo(f"wrote {out}")
