"""Logged data for off-policy evaluation: one validated type, never a dict of arrays.

:class:`LoggedData` holds what a logging policy did (``action``), with which probability
(``pscore``), what came of it (``reward``) and optionally what it saw (``obs``), which actions
were allowed (``action_mask``) and to which user and period each row belongs (``user_id``,
``time_step``) for sequential estimators. :class:`Trajectories` regroups such rows per user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agents.policy import Policy

__all__ = ["LoggedData", "Trajectories", "target_action_dist"]

_ATOL = 1e-6


def _first_row(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


def _vector(name: str, value: Any, n: int | None, kind: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D; got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"`{name}` must have {n} rows like `action`; got {len(arr)}")
    if kind == "int" and arr.dtype.kind not in "iu":
        raise TypeError(f"`{name}` must hold integers; got dtype {arr.dtype}")
    if kind == "float" and arr.dtype.kind not in "iuf":
        raise TypeError(f"`{name}` must be numeric; got dtype {arr.dtype}")
    return arr


@dataclass(frozen=True)
class LoggedData:
    """Rounds logged by a stochastic logging policy, validated once at construction.

    Attributes:
        action: Logged action indices, ``(n,)`` integers in ``[0, n_actions)``.
        reward: Observed rewards, ``(n,)`` finite floats.
        pscore: The logging policy's probability of the logged action, ``(n,)`` in ``(0, 1]``.
        n_actions: Size of the action catalog.
        obs: Optional contexts / observations, ``(n, ...)``; what target policies and reward
            models see. ``None`` for context-free data.
        action_mask: Optional boolean ``(n, n_actions)``; the logged action must be allowed.
        user_id: Optional ``(n,)`` user keys; needed by sequential estimators and used to
            cross-fit reward models by user.
        time_step: Optional ``(n,)`` integer period of each row within its user's trajectory.
        action_names: Optional names of the actions, in index order.

    Raises:
        ValueError: Naming the argument and the first bad row, e.g. "`pscore` must be in
            (0, 1]; got 0.0 at row 17".

    Example:
        >>> data = LoggedData(action=np.array([0, 1]), reward=np.array([1.0, 0.0]),
        ...                   pscore=np.array([0.5, 0.5]), n_actions=2)
        >>> data.n_rounds
        2
    """

    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    n_actions: int
    obs: np.ndarray | None = None
    action_mask: np.ndarray | None = None
    user_id: np.ndarray | None = None
    time_step: np.ndarray | None = None
    action_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.n_actions, (int, np.integer)) or self.n_actions < 1:
            raise ValueError(f"`n_actions` must be a positive integer; got {self.n_actions!r}")
        action = _vector("action", self.action, None, "int")
        n = len(action)
        if n == 0:
            raise ValueError("`action` is empty: logged data needs at least one round")
        reward = _vector("reward", self.reward, n, "float").astype(np.float64, copy=False)
        pscore = _vector("pscore", self.pscore, n, "float").astype(np.float64, copy=False)
        bad = (action < 0) | (action >= self.n_actions)
        if bad.any():
            i = _first_row(bad)
            raise ValueError(
                f"`action` must be in [0, {self.n_actions}); got {action[i]} at row {i}"
            )
        bad = ~np.isfinite(reward)
        if bad.any():
            i = _first_row(bad)
            raise ValueError(f"`reward` must be finite; got {reward[i]} at row {i}")
        bad = ~((pscore > 0) & (pscore <= 1))
        if bad.any():
            i = _first_row(bad)
            raise ValueError(f"`pscore` must be in (0, 1]; got {pscore[i]} at row {i}")
        object.__setattr__(self, "action", action.astype(np.int64, copy=False))
        object.__setattr__(self, "reward", reward)
        object.__setattr__(self, "pscore", pscore)
        object.__setattr__(self, "n_actions", int(self.n_actions))
        if self.obs is not None:
            obs = np.asarray(self.obs)
            if obs.ndim < 1 or len(obs) != n:
                raise ValueError(f"`obs` must have {n} rows like `action`; got shape {obs.shape}")
            if obs.dtype.kind == "f" and not np.isfinite(obs).all():
                i = _first_row(~np.isfinite(obs.reshape(n, -1)).all(axis=1))
                raise ValueError(f"`obs` must be finite; got a NaN/inf at row {i}")
            object.__setattr__(self, "obs", obs)
        if self.action_mask is not None:
            mask = np.asarray(self.action_mask)
            if mask.dtype != bool or mask.shape != (n, self.n_actions):
                raise ValueError(
                    f"`action_mask` must be boolean of shape {(n, self.n_actions)}; "
                    f"got {mask.dtype} {mask.shape}"
                )
            bad = ~mask[np.arange(n), action]
            if bad.any():
                i = _first_row(bad)
                raise ValueError(f"`action` {action[i]} at row {i} is masked by `action_mask`")
            object.__setattr__(self, "action_mask", mask)
        if (self.user_id is None) != (self.time_step is None):
            raise ValueError("`user_id` and `time_step` must be given together (or neither)")
        if self.user_id is not None:
            object.__setattr__(self, "user_id", _vector("user_id", self.user_id, n, "any"))
            ts = _vector("time_step", self.time_step, n, "int")
            if (ts < 0).any():
                i = _first_row(ts < 0)
                raise ValueError(f"`time_step` must be >= 0; got {ts[i]} at row {i}")
            object.__setattr__(self, "time_step", ts.astype(np.int64, copy=False))
        if self.action_names is not None:
            names = tuple(self.action_names)
            if len(names) != self.n_actions:
                raise ValueError(
                    f"`action_names` must name {self.n_actions} actions; got {len(names)}"
                )
            object.__setattr__(self, "action_names", names)

    @property
    def n_rounds(self) -> int:
        """Number of logged rounds."""
        return len(self.action)

    def subset(self, rows: np.ndarray) -> LoggedData:
        """The rows ``rows`` (indices or a boolean mask) as a new LoggedData."""
        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return LoggedData(
            action=self.action[rows], reward=self.reward[rows], pscore=self.pscore[rows],
            n_actions=self.n_actions, obs=take(self.obs), action_mask=take(self.action_mask),
            user_id=take(self.user_id), time_step=take(self.time_step),
            action_names=self.action_names,
        )

    def trajectories(self) -> Trajectories:
        """Regroup the rows per user, ordered by ``time_step`` (needs ``user_id``)."""
        if self.user_id is None or self.time_step is None:
            raise ValueError("sequential estimators need `user_id` and `time_step` in LoggedData")
        return Trajectories.from_rows(self.user_id, self.time_step)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        action_names: list[str] | tuple[str, ...],
        obs_columns: list[str] | None = None,
        action: str = "action",
        reward: str = "reward",
        pscore: str = "pscore",
        user_id: str | None = None,
        time_step: str | None = None,
    ) -> LoggedData:
        """Build from a table (e.g. a per-user, per-period panel) whose actions are names.

        Args:
            df: One row per logged decision.
            action_names: The catalog, in index order; ``df[action]`` holds these names.
            obs_columns: Columns stacked into ``obs`` (float), or ``None`` for no context.
            action, reward, pscore: Column names.
            user_id, time_step: Column names of the trajectory keys (for sequential OPE).

        Raises:
            ValueError: If a column is missing or an action name is not in the catalog.
        """
        needed = [action, reward, pscore] + list(obs_columns or [])
        needed += [c for c in (user_id, time_step) if c is not None]
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise ValueError(f"logged table lacks column(s) {missing}; has {list(df.columns)}")
        names = list(action_names)
        codes = df[action].map({name: i for i, name in enumerate(names)})
        bad = codes.isna().to_numpy()
        if bad.any():
            i = _first_row(bad)
            raise ValueError(
                f"column `{action}` row {i}: action {df[action].iloc[i]!r} is not in the "
                f"catalog {names}"
            )
        return cls(
            action=codes.to_numpy(dtype=np.int64),
            reward=df[reward].to_numpy(dtype=np.float64),
            pscore=df[pscore].to_numpy(dtype=np.float64),
            n_actions=len(names),
            obs=None if not obs_columns else df[obs_columns].to_numpy(dtype=np.float64),
            user_id=None if user_id is None else df[user_id].to_numpy(),
            time_step=None if time_step is None else df[time_step].to_numpy(dtype=np.int64),
            action_names=tuple(names),
        )


@dataclass(frozen=True)
class Trajectories:
    """Row indices of LoggedData regrouped per user and padded to a common horizon.

    Attributes:
        index: ``(n_users, horizon)`` row indices into the LoggedData, ordered by time;
            ``-1`` pads trajectories shorter than the horizon.
        users: ``(n_users,)`` the user key of each trajectory.
    """

    index: np.ndarray
    users: np.ndarray

    @property
    def alive(self) -> np.ndarray:
        """Boolean ``(n_users, horizon)``: whether step ``t`` exists for the user."""
        return self.index >= 0

    @property
    def n_trajectories(self) -> int:
        """Number of users."""
        return self.index.shape[0]

    @property
    def horizon(self) -> int:
        """Length of the longest trajectory."""
        return self.index.shape[1]

    def gather(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Per-row ``values`` (``(n,)``) as ``(n_users, horizon)``, padding with ``fill``."""
        out = np.where(self.alive, values[np.maximum(self.index, 0)], fill)
        return out

    def next_row(self) -> np.ndarray:
        """``(n,)`` row index of the next step of the same user, ``-1`` at a trajectory's end."""
        n = int(self.index.max()) + 1
        nxt = np.full(n, -1, dtype=np.int64)
        cur, after = self.index[:, :-1], self.index[:, 1:]
        ok = cur >= 0
        nxt[cur[ok]] = after[ok]
        return nxt

    @classmethod
    def from_rows(cls, user_id: np.ndarray, time_step: np.ndarray) -> Trajectories:
        """Group rows by user, sort by time step; duplicate (user, time step) pairs are an error."""
        users, inverse = np.unique(user_id, return_inverse=True)
        order = np.lexsort((time_step, inverse))
        u_sorted, t_sorted = inverse[order], time_step[order]
        dup = (u_sorted[1:] == u_sorted[:-1]) & (t_sorted[1:] == t_sorted[:-1])
        if dup.any():
            i = int(order[1:][dup][0])
            raise ValueError(
                f"`user_id`/`time_step` must be unique per row; row {i} repeats user "
                f"{np.asarray(user_id[i]).tolist()!r} at time step {time_step[i]}"
            )
        counts = np.bincount(inverse, minlength=len(users))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.arange(len(order)) - np.repeat(starts, counts)
        index = np.full((len(users), int(counts.max())), -1, dtype=np.int64)
        index[u_sorted, pos] = order
        return cls(index=index, users=users)


def target_action_dist(policy: Policy | np.ndarray, data: LoggedData) -> np.ndarray:
    """The target policy's ``(n, n_actions)`` action probabilities on the logged rows.

    Args:
        policy: Any policy of the common interface (asked on ``data.obs`` with
            ``data.action_mask``), or a table of probabilities ``(n, n_actions)``.
        data: The logged rounds.

    Raises:
        ValueError: If the table has the wrong shape, a row does not sum to 1, has a negative or
            NaN entry, or puts probability on a masked action.
    """
    if isinstance(policy, np.ndarray):
        dist = policy
    elif isinstance(policy, Policy):
        if policy.n_actions != data.n_actions:
            raise ValueError(
                f"target policy has {policy.n_actions} actions; the data has {data.n_actions}"
            )
        obs = data.obs if data.obs is not None else np.zeros((data.n_rounds, 0))
        dist = policy.action_probabilities(obs, data.action_mask)
    else:
        raise TypeError(
            "target `policy` must be a Policy or an (n, n_actions) array; "
            f"got {type(policy).__name__}"
        )
    dist = np.asarray(dist, dtype=np.float64)
    if dist.shape != (data.n_rounds, data.n_actions):
        raise ValueError(
            f"`action_dist` must have shape {(data.n_rounds, data.n_actions)}; got {dist.shape}"
        )
    # whole-array checks first; the rows are located only to name the first bad one
    if not (np.isfinite(dist).all() and dist.min(initial=0.0) >= 0):
        bad = ~np.isfinite(dist).all(axis=1) | (dist < 0).any(axis=1)
        i = _first_row(bad)
        raise ValueError(f"`action_dist` must be finite and >= 0; got {dist[i]} at row {i}")
    sums = dist.sum(axis=1)
    bad = np.abs(sums - 1.0) > _ATOL
    if bad.any():
        i = _first_row(bad)
        raise ValueError(f"`action_dist` rows must sum to 1; got {float(sums[i])} at row {i}")
    if data.action_mask is not None:
        bad = ((dist > 0) & ~data.action_mask).any(axis=1)
        if bad.any():
            i = _first_row(bad)
            raise ValueError(f"`action_dist` puts probability on a masked action at row {i}")
    return dist
