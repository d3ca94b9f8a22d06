"""Fitted-Q evaluation with gradient-boosted trees, its interval refitting the Q model.

``fqe-hgb``: finite-horizon FQE (Le, Voloshin & Yue, ICML 2019) with one scikit-learn
``HistGradientBoostingRegressor`` per period, fitted backwards from the last logged period on
the features ``[obs, one-hot(action)]`` and the targets ``r_it + gamma v_{t+1}(s_i,t+1)``,
``v_t(s) = sum_a pi(a | s) q_t(s, a)``; ``V = mean_i v_0(s_i0)``. Trees neither extrapolate
linearly nor need feature scaling; the per-period models carry the time left.

**Interval** (``kind="members"``): the user bootstrap with the Q model held fixed, widened by
the spread of Q models refitted on ``members`` random halves of the users
(:func:`agents.ope.sim_models.member_interval`); each member's estimate averages its
``v_0`` over all users. ``members=0`` gives the conditional interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from agents.ope.base import Interval, weighted_bootstrap
from agents.ope.data import LoggedData, target_action_dist
from agents.ope.sequential import FQE
from agents.policy import Policy
from predictors import ConfigError, check_int, check_number

__all__ = ["TreeFQE", "TreeQConfig", "fit_tree_q"]


@dataclass(frozen=True)
class TreeQConfig:
    """Hyperparameters of the per-period boosted-tree Q models.

    Attributes:
        max_iter: Boosting iterations per period.
        max_leaf_nodes: Leaves per tree.
        learning_rate: Shrinkage.
        min_samples_leaf: Fewest rows in a leaf.
        l2_regularization: L2 penalty of the leaf values.
        seed: Seed of the boosting (and of the members' halves).
    """

    max_iter: int = 60
    max_leaf_nodes: int = 15
    learning_rate: float = 0.1
    min_samples_leaf: int = 50
    l2_regularization: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self, "max_iter", "min_samples_leaf", ge=1)
        check_int(self, "max_leaf_nodes", ge=2)
        check_number(self, "learning_rate", gt=0)
        check_number(self, "l2_regularization", ge=0)


def fit_tree_q(data: LoggedData, action_dist: np.ndarray, config: TreeQConfig | None = None,
               gamma: float = 1.0, rows: np.ndarray | None = None) -> np.ndarray:
    """Q-values ``(n, n_actions)`` of the target policy at every logged row (module doc).

    Args:
        data: Logged trajectories (``user_id``, ``time_step``).
        action_dist: Target probabilities ``(n, n_actions)`` on every row.
        config: Hyperparameters.
        gamma: Discount factor.
        rows: Optional boolean ``(n,)`` training rows (whole users); every row is predicted.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    config = config or TreeQConfig()
    traj = data.trajectories()
    nxt = traj.next_row()
    train = np.ones(data.n_rounds, bool) if rows is None else np.asarray(rows, bool)
    obs = (np.zeros((data.n_rounds, 0)) if data.obs is None
           else np.asarray(data.obs, dtype=np.float64).reshape(data.n_rounds, -1))
    eye = np.eye(data.n_actions)
    q = np.zeros((data.n_rounds, data.n_actions))
    assert data.time_step is not None
    for t in range(int(data.time_step.max()), -1, -1):
        at = np.flatnonzero(data.time_step == t)
        y = data.reward[at].copy()
        has = nxt[at] >= 0
        if has.any():
            n_idx = nxt[at][has]
            y[has] += gamma * np.einsum("ij,ij->i", action_dist[n_idx], q[n_idx])
        fit = at[train[at]]
        model = HistGradientBoostingRegressor(
            max_iter=config.max_iter, max_leaf_nodes=config.max_leaf_nodes,
            learning_rate=config.learning_rate, min_samples_leaf=config.min_samples_leaf,
            l2_regularization=config.l2_regularization, early_stopping=False,
            random_state=config.seed)
        model.fit(np.hstack([obs[fit], eye[data.action[fit]]]), y[train[at]])
        for a in range(data.n_actions):
            x = np.hstack([obs[at], np.repeat(eye[a][None], len(at), axis=0)])
            q[at, a] = model.predict(x)
    return q


@dataclass(frozen=True)
class TreeFQE(FQE):
    """FQE with per-period boosted trees (:func:`fit_tree_q`); ``V = mean_i v_0(s_i0)``.

    Attributes:
        tree: Hyperparameters of the Q models.
        members: Q models refitted on random halves of the users for the interval (0: the
            interval holds the Q model fixed); 0 or at least 2.

    Example:
        >>> from agents.ope.toy_mdp import ToyMDP
        >>> mdp = ToyMDP()
        >>> data = mdp.log(np.array([[0.5, 0.5], [0.5, 0.5]]), 400, 3, seed=0)
        >>> pi = mdp.action_dist(np.array([[1.0, 0.0], [0.0, 1.0]]), data)
        >>> iv = TreeFQE(members=2).interval(data, pi, n_boot=50)
        >>> iv.kind
        'members'
    """

    name: str = "fqe-hgb"
    tree: TreeQConfig = field(default_factory=TreeQConfig)
    members: int = 4
    requires_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self, "members", ge=0)
        if self.members == 1:
            raise ConfigError("`members` must be 0 or at least 2 (one member has no spread); "
                              "got 1")

    def _fit_q(self, data: LoggedData, dist: np.ndarray) -> np.ndarray:
        return fit_tree_q(data, dist, self.tree, self.gamma)

    def interval(self, data: LoggedData, policy: Policy | np.ndarray,
                 estimated_rewards: np.ndarray | None = None, *, alpha: float = 0.05,
                 n_boot: int = 1000, seed: int = 0,
                 scheme: str = "double-or-nothing") -> Interval:
        """The estimate with the members' interval (module doc); arguments as the base's."""
        if self.members == 0 or estimated_rewards is not None:
            return super().interval(data, policy, estimated_rewards, alpha=alpha,
                                    n_boot=n_boot, seed=seed, scheme=scheme)
        from agents.ope.sim_models import MEMBER_FRACTION, member_interval

        if not 0 < alpha < 1:
            raise ValueError(f"`alpha` must be in (0, 1); got {alpha!r}")
        dist = target_action_dist(policy, data)
        terms = self._checked_terms(data, dist, None)
        mean = float(self._combine(terms.sum(axis=0)[None, :],
                                   np.array([float(len(terms))]))[0])
        boot = weighted_bootstrap(terms, self._combine, int(n_boot), seed, scheme)
        users = data.trajectories().users
        means = []
        for k in range(self.members):
            rng = np.random.default_rng([self.tree.seed, 3, k])
            half = rng.choice(users, size=max(1, int(round(MEMBER_FRACTION * len(users)))),
                              replace=False)
            q = fit_tree_q(data, dist, self.tree, self.gamma, rows=np.isin(data.user_id, half))
            part = self._checked_terms(data, dist, q)
            means.append(float(self._combine(part.sum(axis=0)[None, :],
                                             np.array([float(len(part))]))[0]))
        return member_interval(mean, boot, np.array(means), alpha)
