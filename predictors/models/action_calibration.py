"""Per-action calibration of the learned shop from logged propensities.

A model fitted by plain likelihood on confounded logs can get the EFFECT of each action wrong:
the campaign sends coupons to users it expects to lapse, so what the model learns about
``coupon_10`` mixes the coupon's effect with who got it. An :class:`ActionCalibration` adds one
offset per action to the visit and purchase logits and to the log-revenue mean of that action's
column of the predictions:

* visit, purchase: ``logit p'[:, a] = logit p[:, a] + delta_head[a]``;
* revenue: ``mu'[:, a] = mu[:, a] + delta_revenue[a]``.

Why an offset per action, fitted here, does not learn the logging policy's targeting: each offset
is fitted on the logged rows where that action was taken, every row weighted by ``1 / pscore``
(the logging policy's known probability of that action in that state), self-normalised per
action. The weighted rows of action ``a`` stand for the whole logged state distribution, as if
``a`` had been sent to everyone (importance sampling: ``E[w 1{A=a} f(S)] = E[f(S)]``), and the
same holds for every action. So the offsets of all actions are fitted over the same state
distribution: ``delta[a]`` is the correction that makes the model's average response to ``a``
over the logged states match the log's IPW estimate of it, and differences between actions
are differences of effects, not of the users each action was aimed at. An unweighted
per-action offset would instead match the model to the users the campaign chose for ``a``
(e.g. lapsing users for coupons), and carry that selection into every policy that sends ``a``.
Rows where the logged action was certain (``pscore == 1``, e.g. a control group) inform no
comparison between actions and are left out.

With ``relative`` (the default) the offsets are shifted so that ``none`` gets 0: the
calibration only changes the effect of each action relative to not contacting, and the level
of behaviour is left to the rollout calibration (:mod:`predictors.models.rollout_calibration`).

The offsets are fitted (by :func:`envs.action_calibration.fit_action_calibration`) on the
validation users' one-step predictions along their TRUE histories; here live the fitted object
(JSON-ready, no pickled objects) and the weighted estimating equations it solves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from predictors.errors import ConfigError
from predictors.models.calibration import _logit, _sigmoid

#: Heads an action calibration can shift (``revenue`` shifts the log mean; the others the logit).
ACTION_HEADS = ("visit", "purchase", "revenue")
_ATTR = {"visit": "p_visit", "purchase": "p_purchase"}


@dataclass(frozen=True)
class ActionCalibration:
    """Fitted per-action offsets of the visit and purchase logits and the revenue log mean.

    Attributes:
        action_names: Catalog order of the offsets.
        offsets: Per head (a subset of :data:`ACTION_HEADS`), one offset per action.
        relative: Whether the offsets were shifted so that ``none`` gets 0.
        fitted_on: Free-form description of the fit (users, periods, rows per action).

    Example:
        >>> cal = ActionCalibration(("none", "email"), {"visit": (0.0, -0.5)})
        >>> cal.offset("visit", "email")
        -0.5
    """

    action_names: tuple[str, ...]
    offsets: dict[str, tuple[float, ...]] = field(default_factory=dict)
    relative: bool = True
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.action_names:
            raise ConfigError("`action_names` must hold at least one action")
        for head, v in self.offsets.items():
            if head not in ACTION_HEADS:
                raise ConfigError(f"`offsets`: unknown head {head!r}; expected one of "
                                  f"{ACTION_HEADS}")
            if len(v) != len(self.action_names) or not np.all(np.isfinite(v)):
                raise ConfigError(f"`offsets[{head!r}]` must hold {len(self.action_names)} "
                                  f"finite numbers (one per action); got {list(v)!r}")

    def offset(self, head: str, action: str) -> float:
        """The offset of ``head`` for ``action`` (0 for a head not fitted)."""
        if head not in self.offsets:
            return 0.0
        return float(self.offsets[head][self.action_names.index(action)])

    def apply(self, pred: Any) -> Any:
        """A copy of ``pred`` (:class:`~predictors.models.predictor.Predictions` ``(n, A)``)
        with each action's column shifted by its offsets."""
        if tuple(pred.action_names) != self.action_names:
            raise ConfigError(f"action calibration fitted for {list(self.action_names)}; "
                              f"predictions are for {list(pred.action_names)}")
        changes = {}
        for head, attr in _ATTR.items():
            if head in self.offsets:
                off = np.asarray(self.offsets[head])[None, :]
                changes[attr] = _sigmoid(_logit(getattr(pred, attr)) + off)
        if "revenue" in self.offsets:
            changes["revenue_mu"] = pred.revenue_mu + np.asarray(self.offsets["revenue"])[None]
        return replace(pred, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"action_names": list(self.action_names),
                "offsets": {k: list(v) for k, v in self.offsets.items()},
                "relative": self.relative, "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionCalibration:
        """Inverse of :meth:`to_dict`; a malformed dict raises ConfigError."""
        try:
            return cls(tuple(str(a) for a in d["action_names"]),
                       {str(k): tuple(float(x) for x in v) for k, v in d["offsets"].items()},
                       bool(d.get("relative", True)), dict(d.get("fitted_on", {})))
        except ConfigError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"action calibration: corrupted or incompatible ({e})") from None


def solve_logit_offset(z: np.ndarray, y: np.ndarray, w: np.ndarray, *,
                       cap: np.ndarray | None = None, max_iter: int = 50) -> float:
    """Offset ``d`` with ``sum_i w_i [min(cap_i, sigmoid(z_i + d)) - y_i] = 0``.

    The score equation of a weighted logistic regression with the model's logits ``z`` as
    offset and only an intercept: after it, the weighted mean predicted rate equals the
    weighted observed one. Solved by damped Newton steps (the sum is monotone in ``d``).

    Args:
        z: ``(n,)`` the model's logits.
        y: ``(n,)`` observed 0/1 outcomes.
        w: ``(n,)`` row weights (e.g. ``1 / pscore``).
        cap: ``(n,)`` upper bound of each row's probability (P(visit) for the marginal
            purchase probability).

    Example:
        >>> z = np.zeros(4); y = np.array([1.0, 1.0, 1.0, 0.0])
        >>> round(solve_logit_offset(z, y, np.ones(4)), 4)  # logit(0.75)
        1.0986
    """
    target = float(np.sum(w * y))
    d = 0.0
    for _ in range(max_iter):
        p = _sigmoid(z + d)
        slope = p * (1 - p)
        if cap is not None:
            free = p < cap
            p, slope = np.where(free, p, cap), np.where(free, slope, 0.0)
        g, h = float(np.sum(w * p)) - target, float(np.sum(w * slope))
        if h <= 1e-12:
            break
        step = float(np.clip(g / h, -2.0, 2.0))
        d -= step
        if abs(step) < 1e-8:
            break
    return d


def logit_offset_se(z: np.ndarray, y: np.ndarray, w: np.ndarray, d: float,
                    groups: np.ndarray, *, cap: np.ndarray | None = None) -> float:
    """Standard error of the offset ``d`` of :func:`solve_logit_offset`, clustered by
    ``groups`` (e.g. the user of each row: one user's rows are not independent).

    Sandwich estimate: ``sqrt(sum_g (sum_{i in g} w_i (p_i - y_i))^2) / sum_i w_i p_i (1 - p_i)``.
    """
    p = _sigmoid(z + d)
    slope = p * (1 - p)
    if cap is not None:
        free = p < cap
        p, slope = np.where(free, p, cap), np.where(free, slope, 0.0)
    _, g = np.unique(groups, return_inverse=True)
    score = np.bincount(g, weights=w * (p - y))
    h = float(np.sum(w * slope))
    return float(np.sqrt(np.sum(score ** 2)) / h) if h > 0 else float("inf")


def solve_mean_offset(mu: np.ndarray, p: np.ndarray, log_revenue: np.ndarray,
                      bought: np.ndarray, w: np.ndarray) -> float:
    """Shift of the log mean: the weighted logged mean log revenue of a purchase minus the
    model's (each row's ``mu`` weighted by ``w`` times its purchase probability ``p``).

    Returns 0 when no weighted purchase is logged.
    """
    wb = w * bought
    if wb.sum() <= 0 or np.sum(w * p) <= 0:
        return 0.0
    logged = float(np.sum(wb * log_revenue) / wb.sum())
    model = float(np.sum(w * p * mu) / np.sum(w * p))
    return logged - model
