"""Reward models for DM/DR-type estimators, and cross-fitting so no row is scored by a model
that saw it.

A reward model is a small frozen config whose ``fit_predict`` fits on training rows and returns
expected rewards of every action for test rows. It keeps no state, so cross-fitting is a loop
over folds: :func:`cross_fit_rewards`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from agents.ope.data import LoggedData

__all__ = [
    "RewardModel",
    "RidgeRewardModel",
    "TabularRewardModel",
    "cross_fit_rewards",
    "make_folds",
    "ridge_from_moments",
]


@runtime_checkable
class RewardModel(Protocol):
    """Fits ``E[reward | obs, action]`` on training rows and predicts it for test rows."""

    def fit_predict(
        self,
        obs_train: np.ndarray | None,
        action_train: np.ndarray,
        reward_train: np.ndarray,
        obs_test: np.ndarray | None,
        n_actions: int,
    ) -> np.ndarray:
        """Expected reward of every action for each test row, ``(n_test, n_actions)``."""
        ...


def _design(obs: np.ndarray | None, n: int) -> np.ndarray:
    if obs is None:
        return np.zeros((n, 0))
    return np.asarray(obs, dtype=np.float64).reshape(n, -1)


@dataclass(frozen=True)
class RidgeRewardModel:
    """One ridge regression per action on the flattened observations (plus an intercept).

    Features are standardised on the training rows; the intercept is not penalised. Without
    observations this is the per-action mean reward.

    Attributes:
        alpha: L2 penalty on the standardised coefficients (in units of rows).

    Example:
        >>> m = RidgeRewardModel(alpha=1e-6)
        >>> x = np.array([[0.0], [1.0], [0.0], [1.0]])
        >>> q = m.fit_predict(x, np.array([0, 0, 1, 1]), np.array([0.0, 1.0, 2.0, 2.0]), x[:2], 2)
        >>> np.round(q, 3)
        array([[0., 2.],
               [1., 2.]])
    """

    alpha: float = 1.0

    def __post_init__(self) -> None:
        if not self.alpha >= 0:
            raise ValueError(f"`alpha` must be >= 0; got {self.alpha!r}")

    def fit_predict(
        self,
        obs_train: np.ndarray | None,
        action_train: np.ndarray,
        reward_train: np.ndarray,
        obs_test: np.ndarray | None,
        n_actions: int,
    ) -> np.ndarray:
        """Fit per-action ridge regressions; see :class:`RewardModel`."""
        x = _design(obs_train, len(action_train))
        xt = _design(obs_test, len(obs_test) if obs_test is not None else 0)
        if len(x) == 0:
            return np.zeros((len(xt), n_actions))
        centre = x.mean(axis=0)
        z = np.hstack([np.ones((len(x), 1)), x - centre])
        gram = np.zeros((n_actions, z.shape[1], z.shape[1]))
        cross = np.zeros((n_actions, z.shape[1]))
        for a in range(n_actions):
            rows = action_train == a
            gram[a] = z[rows].T @ z[rows]
            cross[a] = z[rows].T @ reward_train[rows]
        coef = ridge_from_moments(gram, cross, self.alpha)
        return np.hstack([np.ones((len(xt), 1)), xt - centre]) @ coef.T


def ridge_from_moments(gram: np.ndarray, cross: np.ndarray, alpha: float) -> np.ndarray:
    """Per-action ridge coefficients on standardised features, from (weighted) moments.

    With ``x~ = [1, x - c]`` for any fixed centre ``c``, ``gram[a] = sum w x~ x~^T`` and
    ``cross[a] = sum w x~ y`` over action ``a``'s training rows (weights ``w``, e.g. copy
    counts). The features are standardised with the mean and the (population) standard
    deviation of ALL the training rows, the intercept is not penalised, and an action without
    training rows predicts the mean reward of all of them.

    Args:
        gram: ``(n_actions, d, d)``.
        cross: ``(n_actions, d)``.
        alpha: L2 penalty on the standardised coefficients.

    Returns:
        ``(n_actions, d)`` coefficients on ``x~``: the estimate of action ``a`` at ``x`` is
        ``[1, x - c] @ coef[a]``.
    """
    total = gram.sum(axis=0)
    n_w = total[0, 0]
    d = total.shape[0]
    out = np.zeros((len(gram), d))
    if n_w <= 0:
        return out
    mean = total[0, 1:] / n_w
    second = np.diag(total)[1:] / n_w
    var = second - mean**2
    sd = np.sqrt(np.where(var > 1e-12 * np.maximum(second, 1e-300), var, 0.0))
    sd[sd == 0] = 1.0
    # z = x~ @ A: z_0 = 1, z_j = (x~_j - mean_j) / sd_j
    A = np.eye(d)
    A[0, 1:] = -mean / sd
    A[1:, 1:] = np.diag(1.0 / sd)
    penalty = np.full(d, alpha)
    penalty[0] = 0.0
    reg = np.diag(penalty) + 1e-9 * np.eye(d)
    for a in range(len(gram)):
        if gram[a, 0, 0] <= 0:
            out[a, 0] = cross[:, 0].sum() / n_w
            continue
        coef = np.linalg.solve(A.T @ gram[a] @ A + reg, A.T @ cross[a])
        out[a] = A @ coef
    return out


@dataclass(frozen=True)
class TabularRewardModel:
    """Mean reward per (group, action), shrunk toward the action's mean, itself shrunk toward
    the overall mean.

    ``obs`` holds one integer group key per row (shape ``(n,)`` or ``(n, 1)``), e.g. the slot
    position of a recommendation. With ``prior_strength`` = m the estimate of a cell with
    ``n`` rows and mean ``y`` is ``(n * y + m * action_mean) / (n + m)``, where ``action_mean``
    is likewise ``(n_a * y_a + m * overall_mean) / (n_a + m)``.

    Attributes:
        prior_strength: Pseudo-rows of the action mean added to every cell.
    """

    prior_strength: float = 1.0

    def __post_init__(self) -> None:
        if not self.prior_strength >= 0:
            raise ValueError(f"`prior_strength` must be >= 0; got {self.prior_strength!r}")

    def fit_predict(
        self,
        obs_train: np.ndarray | None,
        action_train: np.ndarray,
        reward_train: np.ndarray,
        obs_test: np.ndarray | None,
        n_actions: int,
    ) -> np.ndarray:
        """Cell means with shrinkage; see :class:`RewardModel`."""
        g_train = self._groups(obs_train, len(action_train))
        n_test = len(obs_test) if obs_test is not None else 0
        g_test = self._groups(obs_test, n_test)
        n_groups = int(max(g_train.max(initial=-1), g_test.max(initial=-1))) + 1
        cell = g_train * n_actions + action_train
        size = n_groups * n_actions
        count = np.bincount(cell, minlength=size).reshape(n_groups, n_actions)
        total = np.bincount(cell, weights=reward_train, minlength=size).reshape(n_groups, -1)
        overall = float(reward_train.mean()) if len(reward_train) else 0.0
        a_count, a_total = count.sum(axis=0), total.sum(axis=0)
        m = self.prior_strength
        a_denom = a_count + m
        a_mean = np.where(a_denom > 0, (a_total + m * overall) / np.maximum(a_denom, 1e-12),
                          overall)
        denom = count + m
        table = np.where(denom > 0, (total + m * a_mean) / np.where(denom > 0, denom, 1), a_mean)
        return table[g_test]

    @staticmethod
    def _groups(obs: np.ndarray | None, n: int) -> np.ndarray:
        if obs is None or (np.ndim(obs) == 2 and np.shape(obs)[1] == 0):
            return np.zeros(n, dtype=np.int64)
        g = np.asarray(obs).reshape(n, -1)
        if g.shape[1] != 1 or g.dtype.kind not in "iu" or (g < 0).any():
            raise ValueError(
                "TabularRewardModel needs `obs` of one non-negative integer group key per row; "
                f"got dtype {g.dtype}, shape {np.asarray(obs).shape}"
            )
        return g[:, 0].astype(np.int64)


def make_folds(
    n: int, n_folds: int, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Fold id ``(n,)`` in ``[0, n_folds)`` per row; rows of one group share a fold.

    Example:
        >>> f = make_folds(6, 2, seed=0, groups=np.array([1, 1, 2, 2, 3, 3]))
        >>> bool((f[0::2] == f[1::2]).all())
        True
    """
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"`n_folds` must be an integer >= 2; got {n_folds!r}")
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.permutation(n) % n_folds
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    if n_groups < n_folds:
        raise ValueError(f"cannot cross-fit {n_groups} users into {n_folds} folds")
    return (rng.permutation(n_groups) % n_folds)[inverse]


def cross_fit_rewards(
    data: LoggedData, model: RewardModel, n_folds: int = 2, seed: int = 0
) -> np.ndarray:
    """Out-of-fold reward estimates ``(n, n_actions)``: each fold scored by a model fitted on
    the other folds (folds by user where ``data.user_id`` is set).

    Example:
        >>> data = LoggedData(action=np.array([0, 1, 0, 1]), reward=np.array([1.0, 0, 1, 0]),
        ...                   pscore=np.full(4, 0.5), n_actions=2)
        >>> cross_fit_rewards(data, RidgeRewardModel()).shape
        (4, 2)
    """
    folds = make_folds(data.n_rounds, n_folds, seed, data.user_id)
    out = np.empty((data.n_rounds, data.n_actions))
    obs = np.zeros((data.n_rounds, 0)) if data.obs is None else data.obs
    for k in range(n_folds):
        test = folds == k
        train = ~test
        obs_train, obs_test = obs[train], obs[test]
        out[test] = model.fit_predict(
            obs_train, data.action[train], data.reward[train], obs_test, data.n_actions
        )
    return out
