"""How much of a policy's send pattern the logs hold: action-window support of a rollout.

A learned shop reads each user's history of sends. Histories the log never holds (a push
every week, when the logging campaign sent at most a few in a row) put the predictor's state
where no data constrained it, and a search over policies in the shop then finds whichever
pattern the model's extrapolation happens to favour. :class:`ActionWindowSupport` counts, in
the log, every window of ``window`` consecutive actions of a user (periods without a send
count as ``none``); :meth:`ActionWindowSupport.share` is the share of a rollout's windows
whose pattern the log holds at least ``min_count`` times. A rule search can then admit only
candidates whose simulated behaviour stays where the log vouches for the shop
(:class:`agents.tune_rule.TuneConfig` ``support_window``), in the spirit of count-based safe
policy improvement (SPIBB: leave the logging behaviour only where the data counts are high).

Example:
    >>> logged = np.array([[1, 0, 1, 0], [0, 1, 0, 1]])
    >>> sup = ActionWindowSupport.from_actions(logged, n_actions=3, window=2)
    >>> sup.share(np.array([[1, 0, 1], [1, 1, 1]]), min_count=1)
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictors import ConfigError

__all__ = ["ActionWindowSupport", "log_support"]


@dataclass(frozen=True)
class ActionWindowSupport:
    """Counts of every logged window of consecutive actions.

    Attributes:
        window: Window length (periods).
        n_actions: Catalog size (action indices ``0 .. n_actions - 1``).
        counts: ``(n_actions ** window,)`` logged windows per pattern (pattern code = sum of
            ``action[k] * n_actions ** k`` over the window's positions ``k``).
    """

    window: int
    n_actions: int
    counts: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.window, (int, np.integer)) or self.window < 1:
            raise ConfigError(f"support window must be an integer >= 1; got {self.window!r}")
        if self.n_actions ** self.window > 10_000_000:
            raise ConfigError(f"support window {self.window} over {self.n_actions} actions "
                              f"has {self.n_actions ** self.window:,} patterns (at most "
                              "10,000,000): use a shorter window")

    @property
    def n_windows(self) -> int:
        """Logged windows counted."""
        return int(self.counts.sum())

    def _codes(self, actions: np.ndarray) -> np.ndarray:
        """``(n, T - window + 1)`` pattern codes; -1 for a window holding a negative entry."""
        a = np.asarray(actions)
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be an (n, T) integer array; got {a.shape}, {a.dtype}")
        if a.size and a.max() >= self.n_actions:
            raise ValueError(f"actions must be < {self.n_actions} (the catalog); got {a.max()}")
        if a.shape[1] < self.window:
            return np.zeros((a.shape[0], 0), np.int64)
        w = np.lib.stride_tricks.sliding_window_view(a.astype(np.int64), self.window, axis=1)
        codes = (np.maximum(w, 0) * self.n_actions ** np.arange(self.window, dtype=np.int64)
                 ).sum(-1)
        return np.where((w < 0).any(-1), -1, codes)

    @classmethod
    def from_actions(cls, actions: np.ndarray, n_actions: int,
                     window: int) -> ActionWindowSupport:
        """Count the windows of a logged ``(users, periods)`` action matrix."""
        sup = cls(window, n_actions, np.zeros(n_actions ** window, np.int64))
        codes = sup._codes(actions).ravel()
        codes = codes[codes >= 0]
        return cls(window, n_actions, np.bincount(codes, minlength=n_actions ** window))

    @classmethod
    def from_panel(cls, panel: pd.DataFrame, n_actions: int, none_index: int,
                   window: int) -> ActionWindowSupport:
        """Count the windows of a panel's ``action_index`` (``-1``, no send, as ``none``).

        Each user's periods are taken in order; a user's windows never span two users.
        """
        missing = {"user_id", "period", "action_index"} - set(panel.columns)
        if missing:
            raise ConfigError(f"panel lacks columns {sorted(missing)} for the support count")
        p = panel[["user_id", "period", "action_index"]].sort_values(["user_id", "period"])
        a = p["action_index"].to_numpy(np.int64)
        a = np.where(a < 0, none_index, a)
        user = pd.factorize(p["user_id"])[0]
        counts = np.zeros(n_actions ** window, np.int64)
        lengths = np.bincount(user)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        for t in np.unique(lengths):  # users of one history length as one matrix
            rows = starts[lengths == t]
            mat = a[rows[:, None] + np.arange(t)[None, :]]
            codes = cls(window, n_actions, counts)._codes(mat).ravel()
            codes = codes[codes >= 0]
            counts = counts + np.bincount(codes, minlength=n_actions ** window)
        return cls(window, n_actions, counts)

    def share(self, actions: np.ndarray, min_count: int) -> float:
        """Share of the ``(n, T)`` rollout's windows the log holds ``>= min_count`` times.

        Negative entries (no action: after an episode ended) leave their windows out; a
        rollout without a complete window has share 1.
        """
        codes = self._codes(actions)
        codes = codes[codes >= 0]
        if codes.size == 0:
            return 1.0
        return float((self.counts[codes] >= min_count).mean())


def log_support(data: str | Path, spec: Any, window: int) -> ActionWindowSupport:
    """The dataset's logged action windows of length ``window`` (:mod:`agents.rule_support`).

    Raises:
        ConfigError: The catalog has no ``none`` action (periods without a send need one).
    """
    from predictors import build_panel

    if "none" not in spec.action_names:
        raise ConfigError(f"{data}: the support check needs a `none` action in the catalog; "
                          f"got {list(spec.action_names)}")
    return ActionWindowSupport.from_panel(build_panel(data), len(spec.action_names),
                                          spec.action_names.index("none"), window)
