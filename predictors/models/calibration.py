"""Per-head, per-action calibration of a fitted predictor, fitted on validation users only.

Each binary head (visit, purchase, unsubscribe, churn) gets, for every action, a monotone map of
its predicted probability fitted on the logged rows of that action among the validation users:

* ``temperature``: ``logit' = a * logit + b`` (a temperature and a shift; Platt scaling of the
  head's own logit), fitted by weighted logistic regression (scikit-learn);
* ``isotonic``: scikit-learn's isotonic regression of the outcome on the probability.

An action with fewer than ``min_rows`` rows or ``min_positives`` events for a head uses the
head's map pooled over all actions. The revenue head gets a per-action shift of its log mean
(the mean residual of log revenue on purchase rows), so that the expected revenue of a
purchase is unbiased. With ``weighted`` every row weighs ``1 / propensity`` of its logged
action (clipped, self-normalised), as in propensity-weighted training, so each action's map is
fitted on its rows as if the action had been sent at random.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from predictors.errors import ConfigError

#: Calibration methods (``none`` leaves the heads as trained).
CALIBRATIONS = ("none", "temperature", "isotonic")
#: Output channel of each binary head in the network's outputs ``(..., A, 6)``.
HEAD_CHANNELS = {"visit": 0, "purchase": 1, "unsubscribe": 4, "churn": 5}
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class HeadCalibration:
    """Fitted maps: ``maps[head][action]`` is a JSON-ready dict (``a``, ``b`` or ``x``, ``y``).

    Attributes:
        method: ``temperature`` or ``isotonic``.
        maps: Per head, one map per action index (as strings, JSON keys).
        revenue_shift: Per action, the shift added to the log-revenue mean.
        n_rows: Per head and action, the validation rows the map was fitted on (0: pooled).
    """

    method: str
    maps: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    revenue_shift: list[float] = field(default_factory=list)
    n_rows: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"method": self.method, "maps": self.maps, "revenue_shift": self.revenue_shift,
                "n_rows": self.n_rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeadCalibration:
        """Inverse of :meth:`to_dict`."""
        return cls(d["method"], d["maps"], list(d["revenue_shift"]), d.get("n_rows", {}))

    def apply(self, out: np.ndarray) -> np.ndarray:
        """Calibrated copy of raw network outputs ``(n, A, 6)`` (logits, revenue mean)."""
        out = np.array(out, dtype=np.float64, copy=True)
        for head, ch in HEAD_CHANNELS.items():
            for j in range(out.shape[1]):
                m = self.maps[head][str(j)]
                z = out[:, j, ch]
                if self.method == "temperature":
                    out[:, j, ch] = m["a"] * z + m["b"]
                else:
                    out[:, j, ch] = _logit(np.interp(_sigmoid(z), m["x"], m["y"]))
        out[:, :, 2] += np.asarray(self.revenue_shift)[None, :]
        return out


def _fit_map(method: str, p: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    if method == "temperature":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, max_iter=200)
        lr.fit(_logit(p)[:, None], y.astype(int), sample_weight=w)
        return {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=_EPS, y_max=1 - _EPS, out_of_bounds="clip")
    iso.fit(p, y.astype(float), sample_weight=w)
    return {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def fit_calibration(method: str, p: dict[str, np.ndarray], y: dict[str, np.ndarray],
                    action: np.ndarray, n_actions: int, *, weight: np.ndarray | None = None,
                    log_revenue: tuple[np.ndarray, np.ndarray] | None = None,
                    min_rows: int = 200, min_positives: int = 5) -> HeadCalibration:
    """Fit the maps on logged validation rows.

    Args:
        method: ``temperature`` or ``isotonic``.
        p: Per head, the predicted probability of the logged action ``(n,)``.
        y: Per head, the observed outcome ``(n,)`` (NaN where unlabelled, e.g. censored churn).
        action: Logged action index per row ``(n,)`` (-1 unknown: used only for pooled maps).
        n_actions: Actions of the catalog.
        weight: Optional row weights ``(n,)`` (e.g. inverse propensities).
        log_revenue: ``(residual, action)`` of purchase rows: log revenue minus predicted mean.
        min_rows, min_positives: Below these an action uses the head's pooled map.
    """
    if method not in CALIBRATIONS or method == "none":
        raise ConfigError(f"`calibration` must be one of {CALIBRATIONS[1:]}; got {method!r}")
    w_all = np.ones(len(action)) if weight is None else np.asarray(weight, float)
    cal = HeadCalibration(method)
    for head in HEAD_CHANNELS:
        ph, yh = np.asarray(p[head], float), np.asarray(y[head], float)
        lab = np.isfinite(yh)
        if lab.sum() == 0 or yh[lab].sum() == 0:
            ident = {"a": 1.0, "b": 0.0} if method == "temperature" else \
                {"x": [0.0, 1.0], "y": [0.0, 1.0]}
            cal.maps[head] = {str(j): ident for j in range(n_actions)}
            cal.n_rows[head] = [0] * n_actions
            continue
        pooled = _fit_map(method, ph[lab], yh[lab], w_all[lab])
        cal.maps[head], cal.n_rows[head] = {}, []
        for j in range(n_actions):
            m = lab & (action == j)
            pos = yh[m].sum() if m.any() else 0
            if m.sum() >= min_rows and min_positives <= pos <= m.sum() - min_positives:
                cal.maps[head][str(j)] = _fit_map(method, ph[m], yh[m], w_all[m])
                cal.n_rows[head].append(int(m.sum()))
            else:
                cal.maps[head][str(j)] = pooled
                cal.n_rows[head].append(0)
    shift = np.zeros(n_actions)
    if log_revenue is not None and len(log_revenue[0]):
        res, act = log_revenue
        pooled_shift = float(np.mean(res))
        for j in range(n_actions):
            m = act == j
            shift[j] = float(np.mean(res[m])) if m.sum() >= min_positives else pooled_shift
    cal.revenue_shift = shift.tolist()
    return cal


def calibration_table(data: Any, pred: Any) -> dict[str, dict[str, dict[str, float]]]:
    """Per binary head and logged action: rows, mean predicted, mean observed, ECE.

    ``data``: :class:`~predictors.models.sequence.PanelTensors` (e.g. the held-out users);
    ``pred``: their :class:`~predictors.models.predictor.Predictions`. Key ``all`` pools the
    actions.
    """
    from predictors.models.metrics import expected_calibration_error

    v = data.valid
    act = data.loss_action[v]
    known = act >= 0
    rows, a = np.arange(len(act))[known], act[known]
    raw = data.raw[v][known]
    churn = data.churn[v][known]
    heads = {"visit": (raw[:, 0] > 0, pred.p_visit[rows, a]),
             "purchase": (raw[:, 3] > 0, pred.p_purchase[rows, a]),
             "unsubscribe": (raw[:, 5] > 0, pred.p_unsubscribe[rows, a]),
             "churn": (churn > 0, pred.p_churn[rows, a])}
    lab = {"churn": np.isfinite(churn)}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for head, (y, p) in heads.items():
        ok = lab.get(head, np.ones(len(y), bool))
        out[head] = {}
        for name, sel in [("all", ok)] + [(pred.action_names[j], ok & (a == j))
                                          for j in range(len(pred.action_names))]:
            if sel.sum() == 0:
                continue
            out[head][name] = {"n": int(sel.sum()), "mean_pred": float(p[sel].mean()),
                               "mean_obs": float(y[sel].mean()),
                               "ece": expected_calibration_error(y[sel], p[sel])}
    return out
