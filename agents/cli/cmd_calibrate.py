"""``nudgegym calibrate-predictor``: per-head, per-action calibration of a fitted predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from agents.cli._app import app, output_folder
from predictors.io import write_json, write_run_config


def _print_table(title: str, table: dict) -> None:
    typer.echo(title)
    for head, rows in table.items():
        a = rows["all"]
        typer.echo(f"  {head:<12} mean pred {a['mean_pred']:.4f}  observed {a['mean_obs']:.4f}"
                   f"  ECE {a['ece']:.4f}  n={a['n']}")


@app.command("calibrate-predictor")
def calibrate_predictor(
    predictor: Path = typer.Option(..., "--predictor", help="Run folder of train-predictor."),
    data: Path = typer.Option(..., "--data", help="Dataset folder it was fitted on."),
    out: Path = typer.Option(..., "--out", help="Run folder of the calibrated predictor."),
    method: str = typer.Option("temperature", help="temperature, isotonic, rollout or action."),
    weighted: bool = typer.Option(False, "--weighted/--no-weighted",
                                  help="Inverse-propensity weighted calibration."),
    horizon: int = typer.Option(26, help="rollout: periods replayed."),
    degree: int = typer.Option(1, help="rollout: degree of the offsets in the rollout step."),
    replicates: int = typer.Option(8, help="rollout: simulated copies of each user."),
    rounds: int = typer.Option(6, help="rollout: fit-then-roll-out iterations."),
    seed: int = typer.Option(0, help="rollout: seed of the rollouts."),
    threads: int = typer.Option(1, help="rollout: torch intra-op threads (0: torch's default)."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="rollout: progress bar over the rollouts."),
    relative: bool = typer.Option(True, "--relative/--absolute",
                                  help="action: offsets relative to none (none keeps 0)."),
    max_weight: float | None = typer.Option(None, help="action: largest 1/pscore weight."),
) -> None:
    """Fit calibration on the validation users; check it on the held-out test users.

    Writes the calibrated predictor (same weights) and ``calibration.json`` (per head and
    action: mean predicted, observed and ECE on the test users, before and after).
    ``--method rollout`` keeps the heads as they are and adds per-period offsets of the
    rollout (visit, purchase, revenue, unsubscribe; a polynomial in the rollout step), fitted by
    replaying the validation users' logged actions; check it with ``nudgegym fidelity``.
    ``--method action`` adds one offset per action (visit and purchase logits, revenue log
    mean), fitted on the validation users' true histories with 1/pscore weights so that each
    action's one-step rates match the log's importance-weighted ones.
    """
    from agents.cli.cmd_predictor import _load_data
    from predictors.models import BehaviorPredictor
    from predictors.models.calibration import CALIBRATIONS, calibration_table

    if method == "rollout":
        _calibrate_rollout(predictor, data, out, horizon, degree, replicates, rounds, seed,
                           threads, progress)
        return
    if method == "action":
        from agents.cli._action_effects import calibrate_action

        calibrate_action(predictor, data, out, relative, max_weight, threads)
        return
    if method not in CALIBRATIONS[1:]:
        raise typer.BadParameter(f"expected one of {CALIBRATIONS[1:] + ('rollout', 'action')}; got "
                                 f"{method!r}", param_hint="--method")
    with output_folder(out) as tmp:
        pred = BehaviorPredictor.load(predictor, device="cpu")
        panel, users, _ = _load_data(data)
        full = pred.tensors(panel, users)
        split = pred.split_.set_index("user_id")["split"].reindex(full.user_ids).to_numpy()
        test = full.subset(np.flatnonzero(split == "test"))
        before = calibration_table(test, pred.predict_tensors(test))
        pred.calibrate(panel, users, method=method, weighted=weighted)
        after = calibration_table(test, pred.predict_tensors(test))
        pred.save(tmp)
        write_run_config(tmp, "calibrate-predictor", {"predictor": str(predictor),
                                                      "data": str(data), "method": method,
                                                      "weighted": weighted})
        write_json(tmp / "calibration.json", {"method": method, "weighted": weighted,
                                              "fitted_on": "validation users",
                                              "checked_on": "test users",
                                              "test_before": before, "test_after": after,
                                              "calibration": pred.calibration_.to_dict()})
    _print_table("test users before calibration:", before)
    _print_table(f"test users after {method} calibration (fitted on validation users):", after)
    typer.echo(f"wrote {out}")


def bad_option(error: ValueError) -> typer.BadParameter:
    """A config error on a field (```max_weight` must be ...``) as the CLI option's error
    (``--max-weight``)."""
    text = str(error)
    field = text.split("`")[1] if text.count("`") >= 2 else ""
    return typer.BadParameter(text, param_hint="--" + field.replace("_", "-") if field else None)


def fit_offsets(predictor: Path, data: Path, out: Path, threads: int, method: str,
                options: dict, seed: int | None, fit, attribute: str) -> tuple:
    """The shared path of the offset calibrations (``rollout``, ``action``): check the pair,
    fit ``fit(pred, panel) -> (calibration, report)`` on a copy of the predictor, set it as
    ``attribute`` and write the calibrated predictor, its run config and ``calibration.json``
    to ``out`` (nothing is left there if anything fails)."""
    from agents.cli.cmd_env import _set_threads
    from predictors import build_panel, open_dataset
    from predictors.fingerprint import check_pair
    from predictors.models import BehaviorPredictor

    _set_threads(threads)
    check_pair(predictor, data)
    with output_folder(out) as tmp:
        pred = BehaviorPredictor.load(predictor, device="cpu")
        cal, report = fit(pred, build_panel(open_dataset(data)))
        setattr(pred, attribute, cal)
        pred.save(tmp)
        write_run_config(tmp, "calibrate-predictor", {
            "predictor": str(predictor), "data": str(data), "method": method, **options,
            "threads": threads}, seed)
        write_json(tmp / "calibration.json", {"method": method,
                                              "fitted_on": "validation users",
                                              "checked_on": "nudgegym fidelity (test users)",
                                              **report})
    return cal, report


def _calibrate_rollout(predictor: Path, data: Path, out: Path, horizon: int, degree: int,
                       replicates: int, rounds: int, seed: int, threads: int,
                       progress: bool = True) -> None:
    from envs.rollout_calibration import RolloutCalibrationConfig, fit_rollout_calibration

    try:
        cfg = RolloutCalibrationConfig(horizon=horizon, degree=degree, replicates=replicates,
                                       rounds=rounds, seed=seed)
    except ValueError as e:
        raise bad_option(e) from None
    cal, report = fit_offsets(
        predictor, data, out, threads, "rollout",
        {"horizon": horizon, "degree": degree, "replicates": replicates, "rounds": rounds},
        seed, lambda pred, panel: fit_rollout_calibration(pred, data, cfg, panel=panel,
                                                          progress=progress),
        "rollout_calibration_")
    first, last = report["rounds"][0]["replay"], report["rounds"][-1]["replay"]
    typer.echo(f"replay of the validation users' logged actions ({report['fitted_on']['n_users']}"
               f" users from period {report['fitted_on']['start_period']}, "
               f"{report['horizon']} periods):")
    typer.echo(f"  {'head':<12}{'logged':>10}{'before':>10}{'after':>10}")
    for k in ("visit", "purchase", "revenue", "unsubscribe"):
        b, a = first[k], last[k]
        if b["rel_error"] is None:
            continue
        typer.echo(f"  {k:<12}{b['log']:>10.4f}{b['rel_error']:>+10.1%}{a['rel_error']:>+10.1%}")
    ends = np.array([0, cal.horizon - 1])
    typer.echo("  offsets (logit; revenue: log mean) at the first and last step: " + ", ".join(
        "{} {:+.3f}..{:+.3f}".format(h, *cal.offsets(h, ends)) for h in cal.coef))
    typer.echo(f"wrote {out}")
