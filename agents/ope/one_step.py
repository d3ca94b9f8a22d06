"""One-step (contextual bandit) estimators: DM, IPS, SNIPS, DR, SNDR and Switch-DR.

Notation: ``n`` logged rounds ``(x_i, a_i, r_i)`` with logging propensity
``p_i = pi_0(a_i | x_i)``, target probabilities ``pi(a | x_i)``, importance weight
``w_i = pi(a_i | x_i) / p_i``, cross-fitted reward estimates ``q(x, a)`` and
``q_pi(x_i) = sum_a pi(a | x_i) q(x_i, a)``.

Every estimator here has the form ``V = mean(d_i) + sum(v_i) / sum(m_i)``: subclasses give the
per-round value ``v_i`` (:meth:`OneStepEstimator._round_values`) and, where they normalise,
the normaliser ``m_i`` (default 1) and a plain-mean part ``d_i`` (default none).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from agents.ope.base import BaseEstimator, Interval
from agents.ope.data import LoggedData, target_action_dist
from agents.ope.inputs import action_dist_at_positions, logged_data_from_arrays, slice_at_positions
from agents.ope.reward_model import RewardModel, RidgeRewardModel, cross_fit_rewards
from agents.policy import Policy

__all__ = ["DM", "DR", "IPS", "SNDR", "SNIPS", "OneStepEstimator", "RoundInputs", "SwitchDR"]


@dataclass(frozen=True)
class RoundInputs:
    """What a per-round value function sees.

    Attributes:
        data: The logged rounds.
        action_dist: Target probabilities ``(n, n_actions)``.
        weight: Raw importance weights ``w_i`` ``(n,)``.
        estimated_rewards: Cross-fitted ``q(x_i, a)`` ``(n, n_actions)``, or ``None`` for
            estimators without a reward model.
    """

    data: LoggedData
    action_dist: np.ndarray
    weight: np.ndarray
    estimated_rewards: np.ndarray | None

    @property
    def q_logged(self) -> np.ndarray:
        """``q(x_i, a_i)`` ``(n,)``."""
        assert self.estimated_rewards is not None
        return self.estimated_rewards[np.arange(self.data.n_rounds), self.data.action]

    @property
    def q_pi(self) -> np.ndarray:
        """``sum_a pi(a | x_i) q(x_i, a)`` ``(n,)``."""
        assert self.estimated_rewards is not None
        return np.einsum("ij,ij->i", self.action_dist, self.estimated_rewards)


@dataclass(frozen=True)
class OneStepEstimator(BaseEstimator):
    """Base of the one-step estimators; see the module docstring for the common form.

    Attributes:
        name: Short name used in tables.
        min_ess_ratio: Warn when the weights' effective sample size / n falls below this.
    """

    name: str = "one-step"
    min_ess_ratio: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.min_ess_ratio <= 1:
            raise ValueError(f"`min_ess_ratio` must be in [0, 1]; got {self.min_ess_ratio!r}")

    @abstractmethod
    def _round_values(self, inputs: RoundInputs) -> np.ndarray:
        """Per-round values ``v_i`` ``(n,)``."""

    def _normalizer(self, inputs: RoundInputs) -> np.ndarray | None:
        """Per-round normaliser ``m_i`` ``(n,)``; ``None`` means 1 (a plain mean)."""
        return None

    def _direct(self, inputs: RoundInputs) -> np.ndarray | None:
        """Per-round part averaged separately, ``d_i`` ``(n,)``; ``None`` means none."""
        return None

    def _weights(self, inputs: RoundInputs) -> np.ndarray:
        """Importance weights as used by this estimator (raw by default)."""
        return inputs.weight

    def estimate_policy_value(
        self, *, reward: Any, action: Any, action_dist: Any, pscore: Any = None,
        position: Any = None, estimated_rewards_by_reg_model: Any = None, context: Any = None,
    ) -> float:
        """:meth:`estimate` from obp-style arrays.

        Args:
            reward, action, pscore: ``(n_rounds,)`` logged arrays (``pscore`` may be omitted
                by estimators without importance weights, e.g. DM).
            action_dist: Target probabilities ``(n_rounds, n_actions, len_list)`` as in obp
                (or 2-D); each round uses the slice of its ``position``.
            position: ``(n_rounds,)`` integers in ``[0, len_list)``; needed if ``len_list > 1``.
            estimated_rewards_by_reg_model: Optional reward estimates shaped like
                ``action_dist``; model-based estimators fit their own when omitted.
            context: Optional ``(n_rounds, dim)`` contexts for that reward model.

        Example:
            >>> IPS().estimate_policy_value(reward=np.array([1.0, 0.0]), action=np.array([0, 1]),
            ...     pscore=np.array([0.5, 0.5]), action_dist=np.array([[[1.0], [0.0]]] * 2))
            1.0
        """
        data, dist, q = self._from_arrays(reward, action, action_dist, pscore, position,
                                          estimated_rewards_by_reg_model, context)
        return self.estimate(data, dist, q)

    def estimate_interval(
        self, *, reward: Any, action: Any, action_dist: Any, pscore: Any = None,
        position: Any = None, estimated_rewards_by_reg_model: Any = None, context: Any = None,
        alpha: float = 0.05, n_boot: int = 1000, seed: int = 0,
    ) -> Interval:
        """:meth:`interval` from obp-style arrays (see :meth:`estimate_policy_value`)."""
        data, dist, q = self._from_arrays(reward, action, action_dist, pscore, position,
                                          estimated_rewards_by_reg_model, context)
        return self.interval(data, dist, q, alpha=alpha, n_boot=n_boot, seed=seed)

    def _from_arrays(self, reward: Any, action: Any, action_dist: Any, pscore: Any,
                     position: Any, estimated: Any, context: Any,
                     ) -> tuple[LoggedData, np.ndarray, np.ndarray | None]:
        n = len(np.asarray(action))
        if np.ndim(action_dist) not in (2, 3):
            raise ValueError("`action_dist` must have shape (n_rounds, n_actions, len_list); "
                             f"got {np.shape(action_dist)}")
        dist = action_dist_at_positions(action_dist, n, position)
        if pscore is None:
            if self.uses_weights:
                raise ValueError(f"{self.name} needs `pscore` (the logging policy's "
                                 "probability of each logged action)")
            pscore = np.ones(n)
        q = None if estimated is None else slice_at_positions(
            "estimated_rewards_by_reg_model", estimated, n, position, dist.shape[1])
        data = logged_data_from_arrays(reward, action, pscore, n_actions=dist.shape[1],
                                       position=position, context=context)
        return data, dist, q

    def _terms(
        self, data: LoggedData, policy: Policy | np.ndarray, estimated_rewards: np.ndarray | None
    ) -> np.ndarray:
        dist = target_action_dist(policy, data)
        weight = dist[np.arange(data.n_rounds), data.action] / data.pscore
        self._check_weights(weight)
        if self.requires_reward_model and estimated_rewards is None:
            estimated_rewards = cross_fit_rewards(
                data, self.reward_model, self.n_folds, self.fold_seed  # type: ignore[attr-defined]
            )
        inputs = RoundInputs(data, dist, weight, estimated_rewards)
        values = self._round_values(inputs)
        norm = self._normalizer(inputs)
        direct = self._direct(inputs)
        cols = [values, np.ones_like(values) if norm is None else norm]
        if direct is not None:
            cols.append(direct)
        return np.column_stack(cols)

    def _combine(self, sums: np.ndarray, count: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            value = sums[:, 0] / sums[:, 1]
            if sums.shape[1] > 2:
                value = value + sums[:, 2] / count
        return value


@dataclass(frozen=True)
class IPS(OneStepEstimator):
    """Inverse propensity scoring, optionally with clipped weights.

    ``V = (1/n) sum_i min(w_i, max_weight) r_i``. Unbiased when unclipped and the logging
    policy covers the target's actions. Reference: Horvitz & Thompson, JASA 1952.

    Attributes:
        max_weight: Clip the weights at this value (``None``: no clipping).

    Example:
        >>> data = LoggedData(action=np.array([0, 1]), reward=np.array([1.0, 0.0]),
        ...                   pscore=np.array([0.5, 0.5]), n_actions=2)
        >>> IPS().estimate(data, np.array([[1.0, 0.0], [1.0, 0.0]]))
        1.0
    """

    name: str = "ips"
    max_weight: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_weight is not None and not self.max_weight > 0:
            raise ValueError(f"`max_weight` must be > 0 or None; got {self.max_weight!r}")

    def _weights(self, inputs: RoundInputs) -> np.ndarray:
        if self.max_weight is None:
            return inputs.weight
        return np.minimum(inputs.weight, self.max_weight)

    def _round_values(self, inputs: RoundInputs) -> np.ndarray:
        return self._weights(inputs) * inputs.data.reward


@dataclass(frozen=True)
class SNIPS(IPS):
    """Self-normalised IPS: ``V = sum_i w_i r_i / sum_i w_i``.

    Slightly biased, consistent, and never outside the range of the rewards. Reference:
    Swaminathan & Joachims, "The self-normalized estimator for counterfactual learning",
    NeurIPS 2015.
    """

    name: str = "snips"

    def _normalizer(self, inputs: RoundInputs) -> np.ndarray:
        return self._weights(inputs)


@dataclass(frozen=True)
class DM(OneStepEstimator):
    """Direct method: ``V = (1/n) sum_i q_pi(x_i)`` with a cross-fitted reward model.

    Low variance; biased as much as the reward model is wrong. Reference: Beygelzimer &
    Langford, "The offset tree for learning with partial labels", KDD 2009.

    Attributes:
        reward_model: Model of ``E[r | x, a]`` (used when no ``estimated_rewards`` are given).
        n_folds: Cross-fitting folds (by user when the data has user ids).
        fold_seed: Seed of the fold assignment.
    """

    name: str = "dm"
    reward_model: RewardModel = field(default_factory=RidgeRewardModel)
    n_folds: int = 2
    fold_seed: int = 0
    requires_reward_model: ClassVar[bool] = True
    uses_weights: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.n_folds, int) or self.n_folds < 2:
            raise ValueError(f"`n_folds` must be an integer >= 2; got {self.n_folds!r}")
        if not isinstance(self.reward_model, RewardModel):
            raise TypeError(
                f"`reward_model` must have fit_predict(...); got {type(self.reward_model).__name__}"
            )

    def _round_values(self, inputs: RoundInputs) -> np.ndarray:
        return inputs.q_pi


@dataclass(frozen=True)
class DR(DM):
    """Doubly robust: ``V = (1/n) sum_i [q_pi(x_i) + w_i (r_i - q(x_i, a_i))]``.

    Unbiased if either the propensities or the reward model are right. Reference: Dudik,
    Langford & Li, "Doubly robust policy evaluation and learning", ICML 2011.
    """

    name: str = "dr"
    uses_weights: ClassVar[bool] = True

    def _round_values(self, inputs: RoundInputs) -> np.ndarray:
        return inputs.q_pi + self._weights(inputs) * (inputs.data.reward - inputs.q_logged)


@dataclass(frozen=True)
class SNDR(DR):
    """Self-normalised DR: ``V = mean_i q_pi(x_i) + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i``.

    Reference: Kallus & Uehara, "Intrinsically efficient, stable, and bounded off-policy
    evaluation for reinforcement learning", NeurIPS 2019.
    """

    name: str = "sndr"

    def _round_values(self, inputs: RoundInputs) -> np.ndarray:
        return self._weights(inputs) * (inputs.data.reward - inputs.q_logged)

    def _normalizer(self, inputs: RoundInputs) -> np.ndarray:
        return self._weights(inputs)

    def _direct(self, inputs: RoundInputs) -> np.ndarray:
        return inputs.q_pi


@dataclass(frozen=True)
class SwitchDR(DR):
    """Switch-DR: DR where ``w_i <= tau``, the direct method elsewhere.

    ``V = (1/n) sum_i [q_pi(x_i) + w_i 1{w_i <= tau} (r_i - q(x_i, a_i))]``. Reference: Wang,
    Agarwal & Dudik, "Optimal and adaptive off-policy evaluation in contextual bandits",
    ICML 2017.

    Attributes:
        tau: Weight threshold above which the correction term is dropped.
    """

    name: str = "switch-dr"
    tau: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tau > 0:
            raise ValueError(f"`tau` must be > 0; got {self.tau!r}")

    def _weights(self, inputs: RoundInputs) -> np.ndarray:
        return np.where(inputs.weight <= self.tau, inputs.weight, 0.0)
