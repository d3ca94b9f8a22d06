"""OPE inputs from files: the decision logs of ``nudgegym score`` and tables of target
probabilities.

A **decision log** has one row per decision with ``action`` (a catalog name), ``propensity``
(the probability the serving policy gave it) and one ``prob__<action>`` column per action (the
catalog, in order), as :func:`agents.serving.score_table` writes it; joined with the outcome
the shop observed afterwards (a ``reward`` column), it is logged data for off-policy
evaluation. Optional ``user_id`` and ``period`` columns make it trajectories.

A **target-probability table** has ``prob__<action>`` columns (each row summing to 1) and the
keys to join it to the logged rows: ``user_id`` and ``period`` for a dataset's panel, or
``user_id`` (or nothing: row order) for a decision log.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agents.ope.data import LoggedData, target_action_dist

__all__ = ["logged_data_from_decisions", "read_table", "target_probs_from_table"]

_PREFIX = "prob__"


def read_table(path: str | Path) -> pd.DataFrame:
    """A parquet or CSV file as a frame (``FileNotFoundError`` naming the path)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _action_names(table: pd.DataFrame, source: str) -> list[str]:
    names = [c[len(_PREFIX):] for c in table.columns if c.startswith(_PREFIX)]
    if not names:
        raise ValueError(f"{source}: no `{_PREFIX}<action>` columns (one per action)")
    return names


def logged_data_from_decisions(table: pd.DataFrame, *, reward: str = "reward",
                               source: str = "decisions") -> LoggedData:
    """Logged data from a decision log joined with its outcomes (see the module docstring).

    Raises:
        ValueError: A missing column, an action outside the ``prob__`` catalog, or a
            propensity that disagrees with the row's ``prob__`` of the logged action, naming
            the row.

    Example:
        >>> t = pd.DataFrame({"action": ["a", "b"], "propensity": [0.5, 0.25],
        ...                   "prob__a": [0.5, 0.75], "prob__b": [0.5, 0.25],
        ...                   "reward": [1.0, 0.0]})
        >>> logged_data_from_decisions(t).pscore.tolist()
        [0.5, 0.25]
    """
    names = _action_names(table, source)
    missing = [c for c in ("action", "propensity", reward) if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; a decision log needs "
                         f"`action`, `propensity` and the observed `{reward}`")
    keyed = "user_id" in table.columns and "period" in table.columns
    data = LoggedData.from_frame(table.reset_index(drop=True), action_names=names,
                                 reward=reward, pscore="propensity",
                                 user_id="user_id" if keyed else None,
                                 time_step="period" if keyed else None)
    probs = table[[_PREFIX + n for n in names]].to_numpy(dtype=np.float64)
    logged = probs[np.arange(data.n_rounds), data.action]
    bad = np.abs(logged - data.pscore) > 1e-6
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{source} row {i}: `propensity` {data.pscore[i]} differs from "
                         f"`{_PREFIX}{names[data.action[i]]}` {logged[i]}")
    return data


def target_probs_from_table(table: pd.DataFrame, data: LoggedData,
                            action_names: Sequence[str], *, keys: Sequence[str] = (),
                            source: str = "target probabilities") -> np.ndarray:
    """``(n, n_actions)`` target probabilities for ``data``'s rows from ``table``.

    Args:
        table: ``prob__<action>`` for every name of ``action_names`` plus the ``keys``.
        data: The logged rows.
        action_names: The catalog, in index order.
        keys: ``()`` (row order), ``("user_id",)`` or ``("user_id", "period")``; matched with
            ``data.user_id`` / ``data.time_step``.

    Raises:
        ValueError: A missing column, a logged row without a target row (naming its keys), a
            duplicate key, or a malformed row (via :func:`agents.ope.data.target_action_dist`).
    """
    cols = [_PREFIX + n for n in action_names]
    missing = [c for c in [*cols, *keys] if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}")
    if not keys:
        if len(table) != data.n_rounds:
            raise ValueError(f"{source}: {len(table)} rows for {data.n_rounds} logged rows "
                             "(without user_id, rows are matched by order)")
        return target_action_dist(table[cols].to_numpy(dtype=np.float64), data)
    have = {"user_id": data.user_id, "period": data.time_step}
    if any(have[k] is None for k in keys):
        raise ValueError(f"{source}: keys {list(keys)} but the logs lack them")
    index = pd.MultiIndex.from_frame(table[list(keys)].astype(str))
    if index.has_duplicates:
        i = int(np.flatnonzero(index.duplicated())[0])
        raise ValueError(f"{source} row {i}: duplicate key {index[i]}")
    want = pd.MultiIndex.from_arrays([np.asarray(have[k]).astype(str) for k in keys],
                                     names=list(keys))
    pos = index.get_indexer(want)
    if (pos < 0).any():
        i = int(np.flatnonzero(pos < 0)[0])
        raise ValueError(f"{source}: no row for logged {dict(zip(keys, want[i], strict=True))}")
    return target_action_dist(table[cols].to_numpy(dtype=np.float64)[pos], data)
