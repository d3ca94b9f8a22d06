"""Estimator inputs the way obp users write them: plain arrays, ``action_dist`` with positions.

obp's estimators take ``reward``, ``action``, ``pscore`` ``(n_rounds,)``, an ``action_dist`` of
shape ``(n_rounds, n_actions, len_list)`` and, for slate-like logs, a ``position`` ``(n_rounds,)``
saying which slice of ``action_dist`` each round is about. :func:`action_dist_at_positions`
validates such an array and returns the ``(n_rounds, n_actions)`` probabilities of each round's
own position; :func:`logged_data_from_arrays` turns the logged arrays into :class:`LoggedData`.
Errors name the argument and the first bad row, e.g. "`action_dist` must sum to 1 over actions;
got 0.7 at row 3, position 0".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.ope.data import LoggedData

__all__ = ["action_dist_at_positions", "logged_data_from_arrays", "slice_at_positions"]

_ATOL = 1e-6


def _position(position: Any, n_rounds: int, len_list: int) -> np.ndarray:
    if position is None:
        if len_list != 1:
            raise ValueError(f"`position` is required when `action_dist` has {len_list} "
                             "positions (its third axis)")
        return np.zeros(n_rounds, dtype=np.int64)
    pos = np.asarray(position)
    if pos.ndim != 1 or len(pos) != n_rounds:
        raise ValueError(f"`position` must be 1-D with {n_rounds} rows; got shape {pos.shape}")
    if pos.dtype.kind not in "iu":
        raise TypeError(f"`position` must hold integers; got dtype {pos.dtype}")
    bad = (pos < 0) | (pos >= len_list)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"`position` must be in [0, {len_list}) (the third axis of "
                         f"`action_dist`); got {pos[i]} at row {i}")
    return pos.astype(np.int64)


def slice_at_positions(name: str, array: Any, n_rounds: int, position: Any = None,
                       n_actions: int | None = None) -> np.ndarray:
    """An ``(n_rounds, n_actions[, len_list])`` array at each round's position, finite.

    Args:
        name: The argument's name in error messages.
        array: 2-D ``(n_rounds, n_actions)`` or obp's 3-D ``(n_rounds, n_actions, len_list)``.
        n_rounds: Expected first dimension.
        position: ``(n_rounds,)`` integers; required when ``len_list > 1``.
        n_actions: Expected second dimension (any when ``None``).

    Returns:
        ``(n_rounds, n_actions)`` float64.
    """
    arr = np.asarray(array)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"`{name}` must be numeric; got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] != n_rounds or (n_actions is not None
                                                     and arr.shape[1] != n_actions):
        want = f"({n_rounds}, {'n_actions' if n_actions is None else n_actions}, len_list)"
        raise ValueError(f"`{name}` must have shape {want} (or 2-D without positions); "
                         f"got {np.shape(array)}")
    pos = _position(position, n_rounds, arr.shape[2])
    out = arr[np.arange(n_rounds), :, pos].astype(np.float64)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"`{name}` must be finite; got {out[i].tolist()} at row {i}, "
                         f"position {pos[i]}")
    return out


def action_dist_at_positions(action_dist: Any, n_rounds: int, position: Any = None,
                             n_actions: int | None = None) -> np.ndarray:
    """Validated target probabilities ``(n_rounds, n_actions)`` at each round's position.

    Raises:
        ValueError: Wrong shape, a NaN/inf or negative entry, or a row that does not sum to 1
            over actions, naming the first bad row and its position.

    Example:
        >>> dist = np.array([[[0.5], [0.5]], [[1.0], [0.0]]])
        >>> action_dist_at_positions(dist, 2).tolist()
        [[0.5, 0.5], [1.0, 0.0]]
    """
    dist = slice_at_positions("action_dist", action_dist, n_rounds, position, n_actions)
    pos = _position(position, n_rounds, 1 if np.ndim(action_dist) == 2
                    else np.shape(action_dist)[2])
    bad = (dist < 0).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"`action_dist` must be >= 0; got {dist[i].tolist()} at row {i}, "
                         f"position {pos[i]}")
    sums = dist.sum(axis=1)
    bad = np.abs(sums - 1.0) > _ATOL
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"`action_dist` must sum to 1 over actions (axis 1); got "
                         f"{float(sums[i]):.6g} at row {i}, position {pos[i]}")
    return dist


def logged_data_from_arrays(reward: Any, action: Any, pscore: Any, *, n_actions: int,
                            position: Any = None, context: Any = None) -> LoggedData:
    """Logged rounds from obp-style arrays.

    Args:
        reward, action, pscore: ``(n_rounds,)`` arrays (validated by :class:`LoggedData`).
        n_actions: Size of the action catalog.
        position: Optional ``(n_rounds,)`` positions; they join the context as one more
            column, so the reward model can tell positions apart.
        context: Optional ``(n_rounds, dim)`` contexts the reward model sees.
    """
    n = len(np.asarray(action))
    obs = None if context is None else np.asarray(context, dtype=np.float64).reshape(n, -1)
    if position is not None:
        pos = np.asarray(position, dtype=np.float64).reshape(n, 1)
        obs = pos if obs is None else np.hstack([obs, pos])
    return LoggedData(action=np.asarray(action), reward=np.asarray(reward),
                      pscore=np.asarray(pscore), n_actions=n_actions, obs=obs)
