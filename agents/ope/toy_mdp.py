"""A small tabular MDP with analytic policy values, for testing sequential estimators and the
selection gate.

States ``0 .. S-1`` are observed (``obs`` is the one-hot state without its first column, so a
linear model of ``obs`` is a table); transitions ``P[s, a, s']``, mean rewards ``R[s, a]`` plus
Gaussian noise, start states drawn from ``start``. A policy is a table ``(S, A)`` of action
probabilities. :meth:`ToyMDP.value` is the exact expected return over ``horizon`` steps by
dynamic programming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.ope.data import LoggedData

__all__ = ["ToyMDP"]


def _default_p() -> np.ndarray:
    return np.array([[[0.8, 0.2], [0.3, 0.7]], [[0.4, 0.6], [0.1, 0.9]]])


def _default_r() -> np.ndarray:
    return np.array([[0.0, 1.0], [2.0, 0.5]])


@dataclass(frozen=True)
class ToyMDP:
    """Tabular MDP with a known value (see the module docstring).

    Attributes:
        transition: ``P[s, a, s']``, rows summing to 1.
        reward: Mean reward ``R[s, a]``.
        start: Start-state distribution ``(S,)``.
        noise: Standard deviation of the reward noise.

    Example:
        >>> mdp = ToyMDP()
        >>> round(mdp.value(np.full((2, 2), 0.5), horizon=1), 3)
        0.875
    """

    transition: np.ndarray = field(default_factory=_default_p)
    reward: np.ndarray = field(default_factory=_default_r)
    start: np.ndarray = field(default_factory=lambda: np.array([0.5, 0.5]))
    noise: float = 1.0

    def __post_init__(self) -> None:
        p, r = np.asarray(self.transition, float), np.asarray(self.reward, float)
        s, a = r.shape
        if p.shape != (s, a, s) or not np.allclose(p.sum(axis=2), 1) or (p < 0).any():
            raise ValueError(f"`transition` must be (S, A, S) = {(s, a, s)} with rows summing "
                             f"to 1; got shape {p.shape}")
        if np.shape(self.start) != (s,) or not np.isclose(np.sum(self.start), 1):
            raise ValueError(f"`start` must be a distribution over {s} states")

    @property
    def n_states(self) -> int:
        """Number of states."""
        return int(np.shape(self.reward)[0])

    @property
    def n_actions(self) -> int:
        """Number of actions."""
        return int(np.shape(self.reward)[1])

    def value(self, policy: np.ndarray, horizon: int) -> float:
        """Exact expected (undiscounted) return of ``policy`` ``(S, A)`` over ``horizon`` steps."""
        d, total = np.asarray(self.start, float), 0.0
        for _ in range(horizon):
            total += float((d[:, None] * policy * self.reward).sum())
            d = np.einsum("s,sa,sab->b", d, policy, self.transition)
        return total

    def q_values(self, policy: np.ndarray, horizon: int) -> np.ndarray:
        """Exact ``Q_t(s, a)`` of ``policy`` with ``horizon - t`` steps to go, ``(H, S, A)``."""
        q = np.zeros((horizon, self.n_states, self.n_actions))
        v_next = np.zeros(self.n_states)
        for t in range(horizon - 1, -1, -1):
            q[t] = self.reward + np.einsum("sab,b->sa", self.transition, v_next)
            v_next = (np.asarray(policy, float) * q[t]).sum(axis=1)
        return q

    def log(self, behaviour: np.ndarray, n_users: int, horizon: int,
            seed: int | np.random.Generator) -> LoggedData:
        """Trajectories of ``n_users`` users following ``behaviour`` ``(S, A)``."""
        rng = np.random.default_rng(seed)
        cum_b = np.cumsum(behaviour, axis=1)
        cum_p = np.cumsum(self.transition, axis=2)
        s = (rng.random(n_users)[:, None] > np.cumsum(self.start)[None]).sum(axis=1)
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("s", "a", "r", "p")}
        for _ in range(horizon):
            a = np.minimum((rng.random(n_users)[:, None] > cum_b[s]).sum(axis=1),
                           self.n_actions - 1)
            r = self.reward[s, a] + self.noise * rng.standard_normal(n_users)
            cols["s"].append(s)
            cols["a"].append(a)
            cols["r"].append(r)
            cols["p"].append(behaviour[s, a])
            s = np.minimum((rng.random(n_users)[:, None] > cum_p[s, a]).sum(axis=1),
                           self.n_states - 1)
        state = np.concatenate(cols["s"])
        obs = np.eye(self.n_states)[state][:, 1:]
        return LoggedData(
            action=np.concatenate(cols["a"]), reward=np.concatenate(cols["r"]),
            pscore=np.concatenate(cols["p"]), n_actions=self.n_actions, obs=obs,
            user_id=np.tile(np.arange(n_users), horizon),
            time_step=np.repeat(np.arange(horizon), n_users))

    @staticmethod
    def states(data: LoggedData) -> np.ndarray:
        """The state of each logged row of :meth:`log` (decoded from its one-hot ``obs``)."""
        assert data.obs is not None
        return np.where(data.obs.any(axis=1), data.obs.argmax(axis=1) + 1, 0)

    def action_dist(self, policy: np.ndarray, data: LoggedData) -> np.ndarray:
        """``policy`` ``(S, A)`` on the logged rows of :meth:`log`, ``(n, A)``."""
        return np.asarray(policy, float)[self.states(data)]

    def model_values(self, policy: np.ndarray, data: LoggedData, horizon: int) -> Any:
        """What a simulator equal to this MDP gives the model-based estimators: the exact
        ``Q`` of the logged action and ``V`` of ``policy`` at every logged row
        (:class:`agents.ope.model_based.SimulatorValues`)."""
        from agents.ope.model_based import SimulatorValues

        q = self.q_values(policy, horizon)[data.time_step, self.states(data)]
        dist = self.action_dist(policy, data)
        return SimulatorValues(q=q[np.arange(data.n_rounds), data.action],
                               v=(dist * q).sum(axis=1), dist=dist, user_steps=0)
