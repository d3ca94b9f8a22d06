"""Behavior predictors: how a user responds to each intervention (see :class:`BehaviorPredictor`).

Modules: ``config`` (PredictorConfig, resolve_device), ``sequence`` (panel -> tensors, labels),
``families`` (torch networks), ``train`` (training loop), ``predictor`` (the numpy-facing
interface, save/load), ``metrics`` (AUC, log-loss, ECE, counterfactual report), ``plots``, ``toy``,
``reproducible`` (fits that do not depend on the thread count; imported first, see there).
"""

import predictors.models.reproducible  # noqa: F401, I001  (first: MKL_CBWR before any GEMM)

from predictors.models.config import FAMILIES, PredictorConfig, resolve_device
from predictors.models.metrics import (
    counterfactual_report,
    expected_calibration_error,
    head_metrics,
    log_loss,
    roc_auc,
)
from predictors.models.ensemble import PredictorEnsemble, is_ensemble_folder
from predictors.models.predictor import BehaviorPredictor, Predictions
from predictors.models.sequence import PanelTensors, StaticEncoder, panel_to_tensors
from predictors.models.toy import toy_panel

__all__ = [
    "FAMILIES",
    "BehaviorPredictor",
    "PanelTensors",
    "PredictorConfig",
    "PredictorEnsemble",
    "Predictions",
    "StaticEncoder",
    "counterfactual_report",
    "expected_calibration_error",
    "head_metrics",
    "is_ensemble_folder",
    "log_loss",
    "panel_to_tensors",
    "resolve_device",
    "roc_auc",
    "toy_panel",
]
