"""Sequential estimators over per-user trajectories: PDIS, WPDIS, sequential DR and FQE.

Notation: user ``i`` has steps ``t = 0 .. T_i - 1`` with ``(s_it, a_it, r_it)``, logging
propensity ``p_it``, target probability ``pi(a_it | s_it)``, per-step weight
``w_it = pi(a_it | s_it) / p_it`` and cumulative weight ``rho_it = prod_{u <= t} w_iu``
(``rho_i,-1 = 1``). The value is the expected discounted return per user,
``E[sum_t gamma^t r_t]``; the unit of the bootstrap is the user.

Trajectories end where a user's rows end (the last logged step is treated as terminal).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from agents.ope.base import BaseEstimator
from agents.ope.data import LoggedData, Trajectories, target_action_dist
from agents.ope.fqe import FQEConfig, cross_fit_q, fit_fqe
from agents.policy import Policy
from predictors import check_number

__all__ = ["FQE", "PDIS", "WPDIS", "SequentialDR", "SequentialEstimator", "StepInputs"]


@dataclass(frozen=True)
class StepInputs:
    """What a per-step value function sees; arrays are ``(n_users, horizon)``, 0 where padded.

    Attributes:
        data: The logged rows.
        traj: Rows regrouped per user.
        action_dist: Target probabilities per row ``(n, n_actions)``.
        discount: ``gamma ** t`` ``(horizon,)``.
        reward: ``r_it``.
        rho: Cumulative weights ``rho_it``.
        rho_prev: ``rho_i,t-1`` (1 at ``t = 0``).
        q: Q estimates per row ``(n, n_actions)``, or ``None``.
    """

    data: LoggedData
    traj: Trajectories
    action_dist: np.ndarray
    discount: np.ndarray
    reward: np.ndarray
    rho: np.ndarray
    rho_prev: np.ndarray
    q: np.ndarray | None

    @property
    def alive(self) -> np.ndarray:
        """Whether step ``t`` exists for user ``i``."""
        return self.traj.alive


@dataclass(frozen=True)
class SequentialEstimator(BaseEstimator):
    """Base of the trajectory estimators: ``V = sum_t sum_i v_it / sum_i m_it``.

    Subclasses give per-step values ``v_it`` (:meth:`_step_values`) and, if they normalise,
    ``m_it`` (:meth:`_step_normalizer`; default: one per user, i.e. a mean over users).

    Attributes:
        name: Short name used in tables.
        gamma: Discount factor in ``[0, 1]``.
        min_ess_ratio: Warn when the effective sample size of the users' full-trajectory
            weights, divided by the number of users, falls below this.
    """

    name: str = "sequential"
    gamma: float = 1.0
    min_ess_ratio: float = 0.01

    def __post_init__(self) -> None:
        check_number(self, "gamma", "min_ess_ratio", ge=0, le=1)

    @abstractmethod
    def _step_values(self, inputs: StepInputs) -> np.ndarray:
        """Per-step values ``v_it`` ``(n_users, horizon)``."""

    def _step_normalizer(self, inputs: StepInputs) -> np.ndarray | None:
        """Per-step normaliser ``m_it``, or ``None`` for the mean over users."""
        return None

    def _fit_q(self, data: LoggedData, dist: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name} has no Q model")

    def _terms(
        self, data: LoggedData, policy: Policy | np.ndarray, estimated_rewards: np.ndarray | None
    ) -> np.ndarray:
        traj = data.trajectories()
        dist = target_action_dist(policy, data)
        weight = dist[np.arange(data.n_rounds), data.action] / data.pscore
        rho = np.cumprod(traj.gather(weight, fill=1.0), axis=1)
        rho_prev = np.hstack([np.ones((traj.n_trajectories, 1)), rho[:, :-1]])
        self._check_weights(rho[:, -1])
        if self.requires_reward_model and estimated_rewards is None:
            estimated_rewards = self._fit_q(data, dist)
        inputs = StepInputs(
            data=data, traj=traj, action_dist=dist,
            discount=self.gamma ** np.arange(traj.horizon, dtype=np.float64),
            reward=traj.gather(data.reward), rho=rho * traj.alive,
            rho_prev=rho_prev * traj.alive, q=estimated_rewards,
        )
        values = self._step_values(inputs)
        norm = self._step_normalizer(inputs)
        if norm is None:
            return np.column_stack([values.sum(axis=1), np.ones(traj.n_trajectories)])
        return np.hstack([values, norm])

    def _combine(self, sums: np.ndarray, count: np.ndarray) -> np.ndarray:
        h = sums.shape[1] // 2
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = sums[:, :h] / sums[:, h:]
        return np.where(sums[:, h:] > 0, ratio, 0.0).sum(axis=1)


@dataclass(frozen=True)
class PDIS(SequentialEstimator):
    """Per-decision importance sampling: ``V = (1/N) sum_i sum_t gamma^t rho_it r_it``.

    Reference: Precup, Sutton & Singh, "Eligibility traces for off-policy policy evaluation",
    ICML 2000.
    """

    name: str = "pdis"

    def _step_values(self, inputs: StepInputs) -> np.ndarray:
        return inputs.discount * inputs.rho * inputs.reward


@dataclass(frozen=True)
class WPDIS(PDIS):
    """Weighted PDIS: ``V = sum_t gamma^t sum_i rho_it r_it / sum_i rho_it``.

    The sum over users at step ``t`` runs over users whose trajectory reaches ``t``.
    Reference: Precup, Sutton & Singh, ICML 2000 (weighted variant); Thomas, PhD thesis 2015.
    """

    name: str = "wpdis"

    def _step_normalizer(self, inputs: StepInputs) -> np.ndarray:
        return inputs.rho


@dataclass(frozen=True)
class SequentialDR(SequentialEstimator):
    """Sequential doubly robust estimator with a cross-fitted FQE Q-function.

    ``V = (1/N) sum_i sum_t gamma^t [rho_it (r_it - q(s_it, a_it)) + rho_i,t-1 v(s_it)]``
    with ``v(s) = sum_a pi(a | s) q(s, a)``. Reference: Jiang & Li, "Doubly robust off-policy
    value evaluation for reinforcement learning", ICML 2016.

    Attributes:
        q_model: FQE hyperparameters (used when no ``estimated_rewards`` Q-values are given).
        n_folds: Cross-fitting folds, by user.
        fold_seed: Seed of the fold assignment.
    """

    name: str = "seq-dr"
    q_model: FQEConfig = field(default_factory=FQEConfig)
    n_folds: int = 2
    fold_seed: int = 0
    requires_reward_model: ClassVar[bool] = True

    def _fit_q(self, data: LoggedData, dist: np.ndarray) -> np.ndarray:
        return cross_fit_q(self.q_model, data, dist, self.gamma, self.n_folds, self.fold_seed)

    def _step_values(self, inputs: StepInputs) -> np.ndarray:
        assert inputs.q is not None
        rows = np.maximum(inputs.traj.index, 0)
        q_logged = inputs.q[np.arange(inputs.data.n_rounds), inputs.data.action][rows]
        v = np.einsum("ij,ij->i", inputs.action_dist, inputs.q)[rows]
        step = inputs.rho * (inputs.reward - q_logged) + inputs.rho_prev * v
        return inputs.discount * step * inputs.alive


@dataclass(frozen=True)
class FQE(SequentialEstimator):
    """Fitted-Q evaluation: ``V = (1/N) sum_i sum_a pi(a | s_i0) q(s_i0, a)``.

    The Q-function is fitted on all the data (:func:`agents.ope.fqe.fit_fqe`); the bootstrap
    resamples users with the Q-function held fixed, so the interval omits the model's own
    variance. Reference: Le, Voloshin & Yue, "Batch policy learning under constraints",
    ICML 2019.

    Attributes:
        q_model: FQE hyperparameters.
    """

    name: str = "fqe"
    q_model: FQEConfig = field(default_factory=FQEConfig)
    requires_reward_model: ClassVar[bool] = True
    uses_weights: ClassVar[bool] = False

    def _fit_q(self, data: LoggedData, dist: np.ndarray) -> np.ndarray:
        assert data.time_step is not None
        return fit_fqe(self.q_model, data, dist, self.gamma).predict(data.obs, data.time_step)

    def _step_values(self, inputs: StepInputs) -> np.ndarray:
        assert inputs.q is not None
        first = inputs.traj.index[:, 0]
        v0 = np.einsum("ij,ij->i", inputs.action_dist[first], inputs.q[first])
        out = np.zeros_like(inputs.rho)
        out[:, 0] = v0
        return out
