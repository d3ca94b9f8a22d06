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
    method: str = typer.Option("temperature", help="temperature or isotonic."),
    weighted: bool = typer.Option(False, "--weighted/--no-weighted",
                                  help="Inverse-propensity weighted calibration."),
) -> None:
    """Fit calibration on the validation users; check it on the held-out test users.

    Writes the calibrated predictor (same weights) and ``calibration.json`` (per head and
    action: mean predicted, observed and ECE on the test users, before and after).
    """
    from agents.cli.cmd_predictor import _load_data
    from predictors.models import BehaviorPredictor
    from predictors.models.calibration import CALIBRATIONS, calibration_table

    if method not in CALIBRATIONS[1:]:
        raise typer.BadParameter(f"expected one of {CALIBRATIONS[1:]}; got {method!r}",
                                 param_hint="--method")
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
