"""The estimator interface shared by every OPE estimator, and its vectorised bootstrap.

An estimator is a frozen dataclass whose fields are ``name`` and its hyperparameters. Each one
reduces the logged data to a small matrix of per-unit terms (a unit is a logged round for the
one-step estimators, a user's trajectory for the sequential ones) and a ``_combine`` rule that
turns the column sums of that matrix into the estimate. The point estimate uses the plain sums;
the bootstrap reuses the same terms with random unit weights, so no per-row Python runs.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import poisson

from agents.ope.data import LoggedData
from agents.policy import Policy

__all__ = [
    "BaseEstimator",
    "Interval",
    "WeightDegeneracyWarning",
    "effective_sample_size",
    "BOOTSTRAP_SCHEMES",
    "weighted_bootstrap",
]

#: Poisson(1) inverse-CDF table over 16-bit uniforms: resampling counts are drawn as
#: ``_POISSON_LUT[u16]``, each count's probability exact to 1/65536.
_POISSON_LUT = np.searchsorted(
    poisson.cdf(np.arange(32), 1.0), (np.arange(65536) + 0.5) / 65536, side="right"
).astype(np.float32)
_CHUNK_CELLS = 8_000_000  # resampling weights held at once (32 MB of float32)


class WeightDegeneracyWarning(UserWarning):
    """The importance weights are so uneven that few rounds carry the estimate."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap confidence interval.

    Attributes:
        mean: The estimate on the full data.
        low: Lower bound (the ``alpha / 2`` quantile of the bootstrap estimates).
        high: Upper bound (the ``1 - alpha / 2`` quantile).
        kind: What the bootstrap resampled: ``"bootstrap"`` (the units; nothing was fitted),
            ``"refit"`` (the units, refitting every fitted model on each resample) or
            ``"conditional"`` (the units with a fitted reward / Q model held fixed: the
            interval omits that model's own variance and is too narrow when it matters).
    """

    mean: float
    low: float
    high: float
    kind: str = "bootstrap"

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def half_width(self) -> float:
        """Half the interval's width."""
        return (self.high - self.low) / 2


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of importance weights ``(n,)``.

    Example:
        >>> effective_sample_size(np.array([1.0, 1.0, 0.0, 0.0]))
        2.0
    """
    w = np.asarray(weights, dtype=np.float64)
    denom = float(np.dot(w, w))
    return float(w.sum() ** 2 / denom) if denom > 0 else 0.0


BOOTSTRAP_SCHEMES = ("double-or-nothing", "poisson")


def weighted_bootstrap(
    terms: np.ndarray,
    combine: Callable[[np.ndarray, np.ndarray], np.ndarray],
    n_boot: int,
    seed: int,
    scheme: str = "double-or-nothing",
) -> np.ndarray:
    """Bootstrap replicates of ``combine(weighted column sums, total weight)``.

    Each replicate gives every unit (row of ``terms``) an independent random weight with mean 1
    and variance 1, which reproduces the variance of resampling ``n`` units with replacement:

    * ``"double-or-nothing"``: weight 0 or 2 with probability 1/2 each, from one random bit
      per unit (Owen & Eckles, "Bootstrapping data arrays of arbitrary order", Ann. Appl. Stat.
      2012); the fastest.
    * ``"poisson"``: Poisson(1) counts (Hanley & MacGibbon, Comput. Methods Programs Biomed.
      2006), drawn through a 16-bit inverse-CDF table (each count's probability exact to
      1/65536); closest to the classical multinomial bootstrap.

    The weighted sums of a chunk of replicates come from one float32 matrix product; the
    terms are centred first so the products lose no precision.

    Args:
        terms: ``(n_units, k)`` per-unit terms.
        combine: Maps weighted sums ``(b, k)`` and total weights ``(b,)`` to ``(b,)`` estimates.
        n_boot: Number of replicates.
        seed: Seed of the weights.
        scheme: ``"double-or-nothing"`` or ``"poisson"``.

    Returns:
        ``(n_boot,)`` bootstrap estimates.
    """
    if scheme not in BOOTSTRAP_SCHEMES:
        raise ValueError(f"`scheme` must be one of {BOOTSTRAP_SCHEMES}; got {scheme!r}")
    n, _ = terms.shape
    rng = np.random.default_rng(seed)
    centre = terms.mean(axis=0)
    # the last column of ones makes the same product return each replicate's total weight
    # (integers, exact in float32 below 2**24 units)
    centred = np.hstack([terms - centre, np.ones((n, 1))]).astype(np.float32)
    chunk = max(1, min(n_boot, _CHUNK_CELLS // max(n, 1)))
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        if scheme == "poisson":
            weights = _POISSON_LUT[rng.integers(0, 65536, size=(b, n), dtype=np.uint16)]
            scale = 1.0
        else:
            words = rng.integers(0, 2**64, size=(b, n // 64 + 1), dtype=np.uint64)
            weights = np.unpackbits(words.view(np.uint8), axis=1, count=n).astype(np.float32)
            scale = 2.0
        prod = (weights @ centred).astype(np.float64) * scale
        total = prod[:, -1]
        sums = prod[:, :-1] + total[:, None] * centre
        out[start:start + b] = combine(sums, total)
    return out


class BaseEstimator(ABC):
    """Interface of every OPE estimator: ``estimate`` and ``interval`` of a target policy.

    Subclasses are frozen dataclasses; they turn data and target probabilities into per-unit
    terms (:meth:`_terms`) and combine column sums of the terms into a value (:meth:`_combine`).
    Flags: ``requires_reward_model`` (uses estimated rewards or Q-values) and
    ``uses_weights`` (checks the importance weights' effective sample size).
    """

    name: str
    min_ess_ratio: float
    requires_reward_model: bool = False
    uses_weights: bool = True

    def estimate(
        self,
        data: LoggedData,
        policy: Policy | np.ndarray,
        estimated_rewards: np.ndarray | None = None,
    ) -> float:
        """The estimated value of ``policy`` (per round, or per trajectory if sequential).

        Args:
            data: Logged rounds.
            policy: Target policy (common interface) or its ``(n, n_actions)`` probabilities.
            estimated_rewards: Optional ``(n, n_actions)`` cross-fitted reward (or Q) estimates;
                estimators that need them fit their own model when omitted.
        """
        terms = self._checked_terms(data, policy, estimated_rewards)
        n = np.array([float(len(terms))])
        return float(self._combine(terms.sum(axis=0, dtype=np.float64)[None, :], n)[0])

    def interval(
        self,
        data: LoggedData,
        policy: Policy | np.ndarray,
        estimated_rewards: np.ndarray | None = None,
        *,
        alpha: float = 0.05,
        n_boot: int = 1000,
        seed: int = 0,
        scheme: str = "double-or-nothing",
    ) -> Interval:
        """Estimate with a ``1 - alpha`` percentile-bootstrap interval (over rounds or users).

        Args:
            data, policy, estimated_rewards: As in :meth:`estimate`.
            alpha: One minus the coverage.
            n_boot: Bootstrap replicates.
            seed: Seed of the bootstrap weights.
            scheme: Bootstrap weights, see :func:`weighted_bootstrap`.

        A reward (or Q) model is held fixed across replicates, so the interval of an estimator
        with ``requires_reward_model`` is ``kind="conditional"``; :func:`agents.ope.refit.
        refit_intervals` refits it on each resample instead.
        """
        if not 0 < alpha < 1:
            raise ValueError(f"`alpha` must be in (0, 1); got {alpha!r}")
        if not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
            raise ValueError(f"`n_boot` must be an integer >= 2; got {n_boot!r}")
        terms = self._checked_terms(data, policy, estimated_rewards)
        n = np.array([float(len(terms))])
        mean = float(self._combine(terms.sum(axis=0, dtype=np.float64)[None, :], n)[0])
        boot = weighted_bootstrap(terms, self._combine, int(n_boot), seed, scheme)
        boot = boot[np.isfinite(boot)]
        kind = "conditional" if self.requires_reward_model else "bootstrap"
        if len(boot) == 0:
            return Interval(mean, float("nan"), float("nan"), kind)
        low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        return Interval(mean=mean, low=float(low), high=float(high), kind=kind)

    def _checked_terms(
        self, data: LoggedData, policy: Policy | np.ndarray, estimated_rewards: np.ndarray | None
    ) -> np.ndarray:
        if not isinstance(data, LoggedData):
            raise TypeError(f"`data` must be LoggedData; got {type(data).__name__}")
        if estimated_rewards is not None:
            q = np.asarray(estimated_rewards, dtype=np.float64)
            if q.shape != (data.n_rounds, data.n_actions):
                raise ValueError(
                    f"`estimated_rewards` must have shape {(data.n_rounds, data.n_actions)}; "
                    f"got {q.shape}"
                )
            bad = ~np.isfinite(q).all(axis=1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"`estimated_rewards` must be finite; got {q[i]} at row {i}")
            estimated_rewards = q
        return np.asarray(self._terms(data, policy, estimated_rewards), dtype=np.float64)

    def _check_weights(self, weights: np.ndarray) -> None:
        """Warn where the importance weights' ESS / n falls below ``min_ess_ratio``."""
        if not self.uses_weights:
            return
        ratio = effective_sample_size(weights) / max(len(weights), 1)
        if ratio < self.min_ess_ratio:
            warnings.warn(
                f"{self.name}: importance weights are degenerate: effective sample size is "
                f"{ratio:.2%} of {len(weights)} units (threshold {self.min_ess_ratio:.2%}); "
                "the estimate rests on few rounds",
                WeightDegeneracyWarning,
                stacklevel=4,
            )

    @abstractmethod
    def _terms(
        self, data: LoggedData, policy: Policy | np.ndarray, estimated_rewards: np.ndarray | None
    ) -> np.ndarray:
        """Per-unit terms ``(n_units, k)``."""

    @abstractmethod
    def _combine(self, sums: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Estimates ``(b,)`` from weighted column sums ``(b, k)`` and total counts ``(b,)``."""
