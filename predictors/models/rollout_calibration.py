"""Per-period calibration of a rollout: offsets that keep simulated rates on the logged ones.

One-step calibration (:mod:`predictors.models.calibration`) makes each prediction right on a TRUE
history; in a rollout the model feeds on its own draws and small biases compound, so the
simulated rates drift away from the log as the rollout goes on. A rollout calibration adds to
each head an offset that depends on the rollout step ``t`` (periods since the episode started):

* visit, purchase, unsubscribe: ``logit p' = logit p + phi(t) . theta_head``;
* revenue: ``mu' = mu + phi(t) . theta_revenue`` (the log-normal's log mean);

with ``phi(t) = (1, s, ..., s^degree)``, ``s = min(t, horizon - 1) / (horizon - 1)``: a
polynomial in the rollout step, held at its last value after the fitted horizon. The offsets
are the same for every action (a drift correction, not an effect estimate: the logged actions
are confounded, and an offset per action fitted on them would learn the logging policy's
targeting).

The offsets are fitted (by :func:`envs.rollout_calibration.fit_rollout_calibration`, which
needs the simulator) on validation users only, by replaying their logged actions; here live the
fitted object (JSON-ready, no pickled objects) and the estimating equations it solves:
:func:`solve_rate_offsets` (a logistic-regression offset in the basis ``phi``: the simulated
expected count of each head matches the logged count in every basis direction) and
:func:`solve_mean_offsets` (weighted least squares of the log-revenue gap on ``phi``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from predictors.errors import ConfigError
from predictors.models.calibration import _logit, _sigmoid

#: Heads a rollout calibration can correct (``revenue`` shifts the log mean; the others the logit).
ROLLOUT_HEADS = ("visit", "purchase", "revenue", "unsubscribe")


def step_basis(step: np.ndarray, horizon: int, degree: int) -> np.ndarray:
    """``(n, degree + 1)`` polynomial basis of the rollout step, held after ``horizon - 1``.

    Example:
        >>> step_basis(np.array([0, 1, 2, 5]), horizon=3, degree=1).tolist()
        [[1.0, 0.0], [1.0, 0.5], [1.0, 1.0], [1.0, 1.0]]
    """
    s = np.clip(np.asarray(step, float), 0, horizon - 1) / max(horizon - 1, 1)
    return s[:, None] ** np.arange(degree + 1)[None, :]


@dataclass(frozen=True)
class RolloutCalibration:
    """Fitted per-head offsets as polynomials in the rollout step.

    Attributes:
        horizon: Rollout steps the offsets were fitted on (later steps use the last one's).
        degree: Degree of the polynomial in the step.
        coef: Per head (a subset of :data:`ROLLOUT_HEADS`), the ``degree + 1`` coefficients
            (a head fitted with fewer keeps zeros for the higher powers).
        fitted_on: Free-form description of the fit (users, start period, replicates).
    """

    horizon: int
    degree: int
    coef: dict[str, tuple[float, ...]] = field(default_factory=dict)
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.horizon, int) or self.horizon < 1:
            raise ConfigError(f"`horizon` must be an integer >= 1; got {self.horizon!r}")
        if not isinstance(self.degree, int) or not 0 <= self.degree <= 3:
            raise ConfigError(f"`degree` must be an integer in [0, 3]; got {self.degree!r}")
        for head, c in self.coef.items():
            if head not in ROLLOUT_HEADS:
                raise ConfigError(f"`coef`: unknown head {head!r}; expected one of "
                                  f"{ROLLOUT_HEADS}")
            if len(c) != self.degree + 1 or not np.all(np.isfinite(c)):
                raise ConfigError(f"`coef[{head!r}]` must hold {self.degree + 1} finite numbers; "
                                  f"got {list(c)!r}")

    def offsets(self, head: str, step: np.ndarray) -> np.ndarray:
        """Offset of ``head`` at each rollout step ``(n,)`` (0 for a head not fitted)."""
        step = np.asarray(step)
        if head not in self.coef:
            return np.zeros(step.shape)
        return step_basis(step, self.horizon, self.degree) @ np.asarray(self.coef[head])

    def apply(self, pred: Any, step: np.ndarray) -> Any:
        """A copy of ``pred`` (:class:`~predictors.models.predictor.Predictions` ``(n, A)``)
        with every row shifted by the offsets of its rollout step ``step`` ``(n,)``."""
        changes = {}
        for head, attr in (("visit", "p_visit"), ("purchase", "p_purchase"),
                           ("unsubscribe", "p_unsubscribe")):
            if head in self.coef:
                off = self.offsets(head, step)[:, None]
                changes[attr] = _sigmoid(_logit(getattr(pred, attr)) + off)
        if "revenue" in self.coef:
            changes["revenue_mu"] = pred.revenue_mu + self.offsets("revenue", step)[:, None]
        return replace(pred, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"horizon": self.horizon, "degree": self.degree,
                "coef": {k: list(v) for k, v in self.coef.items()},
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RolloutCalibration:
        """Inverse of :meth:`to_dict`; a malformed dict raises ConfigError."""
        try:
            return cls(int(d["horizon"]), int(d["degree"]),
                       {str(k): tuple(float(x) for x in v) for k, v in d["coef"].items()},
                       dict(d.get("fitted_on", {})))
        except ConfigError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"rollout calibration: corrupted or incompatible ({e})") from None


def solve_rate_offsets(z: list[np.ndarray], target: np.ndarray, n_log: np.ndarray,
                       degree: int, horizon: int, *, cap: list[np.ndarray] | None = None,
                       mask: list[np.ndarray] | None = None, max_iter: int = 50) -> np.ndarray:
    """Coefficients ``theta`` with ``sum_t phi(t) [E_sim(t) - target(t)] n_log(t) = 0``.

    The simulated expected rate at step ``t`` is the mean over the simulated rows of
    ``mask * min(cap, sigmoid(z + phi(t) . theta))``; this is the score equation of a logistic
    regression on ``phi`` with offset ``z`` (the model's logit), with the logged rows as the
    outcomes. Solved by Newton's method (the Jacobian is negative semi-definite).

    Args:
        z: Per step, the model's logits of the simulated rows ``(m_t,)``.
        target: ``(H,)`` logged rate per step.
        n_log: ``(H,)`` logged rows per step (the weight of each step's equation).
        degree: Degree of the polynomial.
        horizon: Steps of the basis (``len(z)``).
        cap: Per step, an upper bound of each row's probability (e.g. P(visit) for the
            marginal purchase probability); none by default.
        mask: Per step, 0/1 weight of each row (e.g. a message was sent, for unsubscribe).

    Returns:
        ``(degree + 1,)`` coefficients.
    """
    phi = step_basis(np.arange(len(z)), horizon, degree)
    theta = np.zeros(degree + 1)
    w = np.asarray(n_log, float)
    for _ in range(max_iter):
        g, jac = np.zeros(degree + 1), np.zeros((degree + 1, degree + 1))
        for t, zt in enumerate(z):
            p = _sigmoid(zt + phi[t] @ theta)
            d = p * (1 - p)
            if cap is not None:
                free = p < cap[t]
                p, d = np.where(free, p, cap[t]), np.where(free, d, 0.0)
            if mask is not None:
                p, d = p * mask[t], d * mask[t]
            m = max(len(zt), 1)
            g += w[t] * phi[t] * (p.sum() / m - target[t])
            jac += w[t] * np.outer(phi[t], phi[t]) * (d.sum() / m)
        step = np.linalg.lstsq(jac + 1e-9 * np.eye(degree + 1), g, rcond=None)[0]
        # damped Newton: an offset of many logits is never what a calibration should find
        step = np.clip(step, -2.0, 2.0)
        theta = theta - step
        if np.max(np.abs(step)) < 1e-7:
            break
    return theta


def solve_mean_offsets(gap: np.ndarray, weight: np.ndarray, degree: int,
                       horizon: int) -> np.ndarray:
    """Weighted least squares of a per-step gap ``(H,)`` (logged minus simulated mean) on phi.

    Steps with zero weight (no logged purchase) are left out.
    """
    phi = step_basis(np.arange(len(gap)), horizon, degree)
    w = np.sqrt(np.asarray(weight, float))
    ok = w > 0
    if not ok.any():
        return np.zeros(degree + 1)
    return np.linalg.lstsq(phi[ok] * w[ok, None], np.asarray(gap)[ok] * w[ok], rcond=None)[0]
