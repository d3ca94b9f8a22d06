"""Fit a per-action calibration of the learned shop on validation users, from logged propensities.

The validation users of the predictor's split are walked along their TRUE logged histories
(periods ``start .. last``); at every logged row whose action had a known propensity below 1,
the shop's one-step prediction for the logged action is recorded (with the rollout
calibration's first-step offsets when it has one, since every episode starts there), together
with the logged outcome and the weight ``1 / pscore``. Per action, the offsets of
:class:`~predictors.models.action_calibration.ActionCalibration` are solved so that the weighted
simulated visit and purchase rates and the weighted log revenue of a purchase equal the logged
ones: the shop's response to each action then matches the log's importance-weighted estimate of
it over the whole logged state distribution (the module docstring there says why this does not
learn the logging policy's targeting). Predictions on true histories do not depend on the
offsets, so one pass suffices.

The test users are never touched: check the result with ``nudgegym fidelity`` (its per-action
effect section and, on a synthetic shop, the rule values).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from envs.action_effects import along_log, logged_steps
from envs.shop_env import load_learned_shop
from envs.simulator import RAW_COLUMNS
from predictors import build_panel, check_int, check_number, open_dataset
from predictors.errors import ConfigError
from predictors.models import BehaviorPredictor
from predictors.models.action_calibration import (
    ACTION_HEADS,
    ActionCalibration,
    logit_offset_se,
    solve_logit_offset,
    solve_mean_offset,
)

_EPS = 1e-6
#: Fewer weighted rows of an action than this leave its offsets at 0 (with a warning).
MIN_ROWS = 200


@dataclass(frozen=True)
class ActionCalibrationConfig:
    """Options of :func:`fit_action_calibration`.

    Attributes:
        heads: Heads to shift (a subset of ``visit``, ``purchase``, ``revenue``; heads the
            data never shows are skipped).
        relative: Shift the offsets so that ``none`` gets 0 (only the effects relative to not
            contacting change; the level is the rollout calibration's job).
        start_period: First period walked (1: the whole log; every row needs history).
        max_weight: Largest importance weight (``None``: no clipping).
        min_rows: Fewer logged rows of an action leave its offsets at 0.
    """

    heads: tuple[str, ...] = ACTION_HEADS
    relative: bool = True
    start_period: int = 1
    max_weight: float | None = None
    min_rows: int = MIN_ROWS

    def __post_init__(self) -> None:
        bad = [h for h in self.heads if h not in ACTION_HEADS]
        if bad or not self.heads:
            raise ConfigError(f"`heads` must be a non-empty subset of {ACTION_HEADS}; "
                              f"got {list(self.heads)!r}")
        check_int(self, "start_period", "min_rows", ge=1)
        check_number(self, "max_weight", ge=1, optional=True)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def record_one_step(shop, panel: pd.DataFrame, horizon: int) -> dict[str, np.ndarray]:
    """Along the start users' true histories, the shop's predictions for the logged action.

    Returns:
        Flat arrays over the eligible rows: ``user`` (id), ``period``, ``action``,
        ``weight`` (``1 / pscore``), the
        model's ``z_visit``, ``z_purchase`` (logits), ``mu`` (log-revenue mean), and the
        logged ``visit``, ``purchase``, ``log_revenue`` (0 where no purchase).
    """
    steps = logged_steps(panel, shop, horizon)
    rollout = getattr(shop.simulator.predictor, "rollout_calibration_", None)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in (
        "user", "period", "action", "weight", "z_visit", "z_purchase", "mu", "visit",
        "purchase", "log_revenue")}
    for t, sim in along_log(shop, steps):
        ok = np.flatnonzero(steps.eligible[:, t])
        if not len(ok):
            continue
        pred = sim.predictor.predict_from_state(sim.state)
        if rollout is not None:  # every episode starts at the rollout's first step
            pred = rollout.apply(pred, np.zeros(sim.n, np.int64))
        a = steps.action[ok, t]
        eff, _ = sim.effective_action(steps.action[:, t])
        eff = eff[ok]
        raw = steps.raw[ok, t]
        bought = raw[:, RAW_COLUMNS.index("purchases")] > 0
        revenue = raw[:, RAW_COLUMNS.index("revenue")]
        rows["user"].append(shop.starts.user_ids[ok])
        rows["period"].append(np.full(len(ok), shop.starts.period + t))
        rows["action"].append(a)
        rows["weight"].append(1.0 / steps.pscore[ok, t])
        rows["z_visit"].append(_logit(pred.p_visit[ok, eff]))
        rows["z_purchase"].append(_logit(pred.p_purchase[ok, eff]))
        rows["mu"].append(pred.revenue_mu[ok, eff])
        rows["visit"].append((raw[:, RAW_COLUMNS.index("visits")] > 0).astype(float))
        rows["purchase"].append(bought.astype(float))
        rows["log_revenue"].append(np.where(bought & (revenue > 0),
                                            np.log(np.maximum(revenue, _EPS)), 0.0))
    return {k: np.concatenate(v) for k, v in rows.items()}


def _rates(rec: dict, offsets: dict[str, np.ndarray], activity: str, j: int) -> dict:
    """Weighted simulated and logged rates of action ``j`` under ``offsets``."""
    m = rec["action"] == j
    w = rec["weight"][m]
    pv = _sigmoid(rec["z_visit"][m] + offsets["visit"][j])
    pp = _sigmoid(rec["z_purchase"][m] + offsets["purchase"][j])
    if activity == "visit":
        pp = np.minimum(pp, pv)
    mu = rec["mu"][m] + offsets["revenue"][j]
    buy = rec["purchase"][m]
    out = {"rows": int(m.sum()),
           "visit_sim": float(np.sum(w * pv) / w.sum()),
           "visit_log": float(np.sum(w * rec["visit"][m]) / w.sum()),
           "purchase_sim": float(np.sum(w * pp) / w.sum()),
           "purchase_log": float(np.sum(w * buy) / w.sum())}
    out["log_revenue_sim"] = float(np.sum(w * pp * mu) / max(np.sum(w * pp), _EPS))
    out["log_revenue_log"] = (float(np.sum(w * buy * rec["log_revenue"][m])
                                    / np.sum(w * buy)) if np.sum(w * buy) > 0 else None)
    return out


def fit_action_calibration(predictor: BehaviorPredictor, data: str | Path,
                           config: ActionCalibrationConfig | None = None, *,
                           panel: pd.DataFrame | None = None
                           ) -> tuple[ActionCalibration, dict]:
    """Fit per-action offsets of ``predictor`` (left unchanged) on its validation users.

    Any head or rollout calibration the predictor holds stays, and the offsets go on top; an
    action calibration it already holds is ignored (refitted from scratch).

    Returns:
        The fitted :class:`ActionCalibration` and a JSON-ready report: per action the rows,
        weighted simulated vs logged rates before and after, the offsets and the standard
        errors of the (absolute) logit offsets, clustered by user: an offset within about two
        of them of 0 is not distinguishable from the log's sampling noise.

    Raises:
        ConfigError: The log has no propensities below 1 (nothing to weight by).
    """
    cfg = config or ActionCalibrationConfig()
    if panel is None:
        panel = build_panel(open_dataset(data))
    last = int(panel["period"].max())
    if cfg.start_period > last:
        raise ConfigError(f"`start_period` {cfg.start_period} is past the log's last period "
                          f"{last}")
    horizon = last + 1 - cfg.start_period
    names = tuple(predictor.action_names_)
    saved = predictor.action_calibration_
    try:
        predictor.action_calibration_ = None
        shop = load_learned_shop(predictor, data, start_period=cfg.start_period,
                                 start_users="val", panel=panel)
        rec = record_one_step(shop, panel, horizon)
    finally:
        predictor.action_calibration_ = saved
    if cfg.max_weight is not None:
        rec["weight"] = np.minimum(rec["weight"], cfg.max_weight)
    activity = predictor.activity_
    heads = [h for h in cfg.heads if not (h == "visit" and activity != "visit")
             and not (h == "revenue" and not (rec["log_revenue"] != 0).any())]
    off = {h: np.zeros(len(names)) for h in ACTION_HEADS}
    se: dict[str, dict[str, float]] = {}
    few = []
    for j, name in enumerate(names):
        m = rec["action"] == j
        if m.sum() < cfg.min_rows:
            few.append(name)
            continue
        w, user = rec["weight"][m], rec["user"][m]
        se[name] = {}
        if "visit" in heads:
            off["visit"][j] = solve_logit_offset(rec["z_visit"][m], rec["visit"][m], w)
            se[name]["visit"] = logit_offset_se(rec["z_visit"][m], rec["visit"][m], w,
                                                off["visit"][j], user)
        if "purchase" in heads:
            cap = (_sigmoid(rec["z_visit"][m] + off["visit"][j]) if activity == "visit"
                   else None)
            off["purchase"][j] = solve_logit_offset(rec["z_purchase"][m], rec["purchase"][m],
                                                    w, cap=cap)
            se[name]["purchase"] = logit_offset_se(rec["z_purchase"][m], rec["purchase"][m],
                                                   w, off["purchase"][j], user, cap=cap)
        if "revenue" in heads:
            pp = _sigmoid(rec["z_purchase"][m] + off["purchase"][j])
            if activity == "visit":
                pp = np.minimum(pp, _sigmoid(rec["z_visit"][m] + off["visit"][j]))
            off["revenue"][j] = solve_mean_offset(rec["mu"][m], pp, rec["log_revenue"][m],
                                                  rec["purchase"][m], w)
    if few:
        warnings.warn(f"action calibration: fewer than {cfg.min_rows} logged rows for "
                      f"{', '.join(few)}; their offsets stay 0", stacklevel=2)
    none = predictor.none_index_
    if cfg.relative and none is not None:
        off = {h: v - v[none] for h, v in off.items()}
    zero = {h: np.zeros(len(names)) for h in ACTION_HEADS}
    fitted_on = {"users": "val", "n_users": len(shop.starts), "start_period": cfg.start_period,
                 "periods": horizon, "rows": int(len(rec["action"])),
                 "max_weight": cfg.max_weight,
                 "weights": "1 / pscore of the logged action, self-normalised per action"}
    cal = ActionCalibration(names, {h: tuple(float(x) for x in off[h]) for h in heads},
                            cfg.relative, fitted_on)
    per_action = {}
    for j, name in enumerate(names):
        if (rec["action"] == j).any():
            per_action[name] = {"before": _rates(rec, zero, activity, j),
                                "after": _rates(rec, off, activity, j),
                                "offsets": {h: float(off[h][j]) for h in heads},
                                "offset_se": se.get(name, {})}
    return cal, {"fitted_on": fitted_on, "heads": heads, "relative": cfg.relative,
                 "per_action": per_action, "calibration": cal.to_dict()}
