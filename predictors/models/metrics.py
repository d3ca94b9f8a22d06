"""Metrics of probabilistic predictions: AUC, log-loss, expected calibration error, and the
per-head and counterfactual reports of a behavior predictor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from predictors.models.predictor import Predictions
from predictors.models.sequence import PanelTensors

_EPS = 1e-7


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count 1/2); NaN if one class is absent.

    Example:
        >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
        0.75
    """
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy in nats (probabilities clipped to [1e-7, 1 - 1e-7])."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else float("nan")


def calibration_curve(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width bins of predicted probability.

    Columns: ``bin``, ``count``, ``mean_pred``, ``mean_obs``.
    """
    p = np.asarray(p, dtype=np.float64)
    b = np.minimum((p * n_bins).astype(int), n_bins - 1)
    df = pd.DataFrame({"bin": b, "p": p, "y": np.asarray(y, dtype=np.float64)})
    g = df.groupby("bin").agg(count=("p", "size"), mean_pred=("p", "mean"), mean_obs=("y", "mean"))
    return g.reset_index()


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE: count-weighted mean |mean predicted - observed| over equal-width bins."""
    if len(y) == 0:
        return float("nan")
    c = calibration_curve(y, p, n_bins)
    return float((c["count"] * (c["mean_pred"] - c["mean_obs"]).abs()).sum() / c["count"].sum())


def logged_outcomes(data: PanelTensors, pred: Predictions) -> dict[str, tuple[np.ndarray, ...]]:
    """Labels and the predicted probability of the logged action, per binary head.

    Returns ``{head: (y, p)}`` over valid steps with a known (or attributed) action; churn only
    where labelled. ``revenue`` maps to ``(log revenue, mu, sigma)`` on purchase rows.
    """
    v = data.valid
    act = data.loss_action[v]
    raw = data.raw[v]
    known = act >= 0
    r = np.arange(len(act))[known]
    a = act[known]
    out: dict[str, tuple[np.ndarray, ...]] = {}
    for head, col, arr in (("visit", 0, pred.p_visit), ("purchase", 3, pred.p_purchase),
                           ("unsubscribe", 5, pred.p_unsubscribe)):
        out[head] = (raw[known, col] > 0, arr[r, a])
    churn = data.churn[v][known]
    has = np.isfinite(churn)
    out["churn"] = (churn[has] > 0, pred.p_churn[r, a][has])
    buy = (raw[known, 3] > 0) & (raw[known, 6] > 0)
    out["revenue"] = (np.log(raw[known, 6][buy]), pred.revenue_mu[r, a][buy],
                      pred.revenue_sigma[r, a][buy])
    return out


def head_metrics(data: PanelTensors, pred: Predictions) -> dict[str, dict[str, float]]:
    """Per head: ``auc``, ``log_loss``, ``ece``, ``base_rate``, ``n`` (revenue: ``nll``,
    ``mae_log``) on the logged actions."""
    res: dict[str, dict[str, float]] = {}
    for head, vals in logged_outcomes(data, pred).items():
        if head == "revenue":
            y, mu, sigma = vals
            nll = np.log(sigma) + 0.5 * ((y - mu) / sigma) ** 2 + 0.5 * np.log(2 * np.pi)
            res[head] = {"nll": float(np.mean(nll)) if len(y) else float("nan"),
                         "mae_log": float(np.mean(np.abs(y - mu))) if len(y) else float("nan"),
                         "n": int(len(y))}
            continue
        y, p = vals
        res[head] = {"auc": roc_auc(y, p), "log_loss": log_loss(y, p),
                     "ece": expected_calibration_error(y, p),
                     "base_rate": float(np.mean(y)) if len(y) else float("nan"), "n": int(len(y))}
    return res


def counterfactual_report(keys: pd.DataFrame, pred: Predictions, truth: pd.DataFrame,
                          none_action: str = "none") -> dict[str, Any]:
    """Compare predictions with true counterfactual outcomes of a synthetic shop.

    Args:
        keys: ``user_id``, ``period`` of the predicted rows.
        pred: Predictions for those rows.
        truth: ``truth/outcomes.parquet``: ``user_id``, ``period``, ``action``, ``p_visit``,
            ``p_purchase``, ``expected_revenue``, ``p_churn``.
        none_action: Baseline of the average effects.

    Returns:
        ``mae`` per quantity over rows x all actions, and ``effects``: per action and quantity,
        the predicted and true mean difference against ``none_action`` and the relative error.
    """
    names = list(pred.action_names)
    mine = pd.concat([keys.reset_index(drop=True), pred.to_frame()], axis=1)
    long = []
    for a in names:
        d = mine[["user_id", "period", f"p_visit__{a}", f"p_purchase__{a}",
                  f"expected_revenue__{a}", f"p_churn__{a}"]].copy()
        d.columns = ["user_id", "period", "p_visit", "p_purchase", "expected_revenue", "p_churn"]
        d["action"] = a
        long.append(d)
    mine_long = pd.concat(long, ignore_index=True)
    quantities = [q for q in ("p_visit", "p_purchase", "expected_revenue", "p_churn")
                  if q in truth.columns]
    t = truth[["user_id", "period", "action", *quantities]].copy()
    t["action"] = t["action"].astype(str)
    t["period"] = t["period"].astype("int64")
    mine_long["period"] = mine_long["period"].astype("int64")
    m = mine_long.merge(t, on=["user_id", "period", "action"], suffixes=("", "_true"))
    report: dict[str, Any] = {"n_rows": int(m[["user_id", "period"]].drop_duplicates().shape[0]),
                              "n_pairs": int(len(m)), "mae": {}, "effects": {}}
    for q in quantities:
        report["mae"][q] = float(np.mean(np.abs(m[q] - m[f"{q}_true"]))) if len(m) else np.nan
    if none_action in names and len(m):
        wide = m.pivot_table(index=["user_id", "period"], columns="action",
                             values=[*quantities, *[f"{q}_true" for q in quantities]])
        for a in names:
            if a == none_action:
                continue
            eff: dict[str, dict[str, float]] = {}
            for q in quantities:
                p_eff = float((wide[(q, a)] - wide[(q, none_action)]).mean())
                t_eff = float((wide[(f"{q}_true", a)] - wide[(f"{q}_true", none_action)]).mean())
                rel = abs(p_eff - t_eff) / abs(t_eff) if t_eff != 0 else float("nan")
                eff[q] = {"predicted": p_eff, "true": t_eff, "relative_error": rel}
            report["effects"][a] = eff
    return report
