"""The policy families the room measurement searches: capped rules, static features, value models.

* A **capped rule** ``(action, gap)`` sends ``action`` when the last contact is at least ``gap``
  periods ago and the user has not unsubscribed from the action's channel, else ``none``
  (``never`` is the rule with action ``none``). A per-user rule index applies a different capped
  rule to each user.
* :class:`StaticEncoder` turns a users table into fixed per-user columns a policy may read
  (``static:COL`` for numbers and booleans, ``static:COL=VALUE`` one-hot for categories).
* :class:`RuleValueModel` predicts, per user, the 26-period return of every capped rule relative
  to a reference rule from a feature vector (gradient-boosted trees, one per rule, fitted on
  returns simulated with common random numbers), and assigns each user its best predicted rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from predictors import ActionSpec, FeatureConfig

__all__ = ["CappedRule", "RuleValueModel", "StaticEncoder", "capped_actions", "rule_grid"]

#: Users-table columns a policy never reads (ids, dates the history already covers, the
#: experiment's control flag).
_SKIP = ("user_id", "signup_date", "holdout")


@dataclass(frozen=True)
class CappedRule:
    """``action`` (catalog index; 0 = ``none``) whenever the last contact is >= ``gap`` ago."""

    action: int
    gap: int

    def label(self, action_names: Sequence[str]) -> str:
        """``never`` or ``capped:ACTION:gap=G``."""
        if self.action == 0:
            return "never"
        return f"capped:{action_names[self.action]}:gap={self.gap}"


def rule_grid(actions: Sequence[ActionSpec], gaps: Sequence[int]) -> list[CappedRule]:
    """``never`` followed by every contacting action x gap."""
    return [CappedRule(0, 1)] + [CappedRule(a, g) for a in range(1, len(actions))
                                 for g in gaps]


def capped_actions(obs: np.ndarray, names: Sequence[str], actions: Sequence[ActionSpec],
                   rules: Sequence[CappedRule], which: np.ndarray,
                   features: FeatureConfig) -> np.ndarray:
    """The action of rule ``rules[which[i]]`` for each observation row ``i``, shape (n,)."""
    col = {n: i for i, n in enumerate(names)}
    act = np.array([r.action for r in rules])[which]
    gap = np.array([r.gap for r in rules])[which]
    since = np.rint(obs[:, col["since_contact"]] * features.recency_cap)
    email = np.array([a.channel == "email" for a in actions])[act]
    push = np.array([a.channel == "push" for a in actions])[act]
    off = ((email & (obs[:, col["email_unsubscribed"]] > 0.5))
           | (push & (obs[:, col["push_unsubscribed"]] > 0.5)))
    return np.where((since >= gap) & ~off, act, 0).astype(np.int64)


class StaticEncoder:
    """Users-table columns -> float32 features, categories learned by :meth:`fit`.

    Example:
        >>> users = pd.DataFrame({"user_id": [1, 2], "tier": ["gold", "none"],
        ...                       "app": [True, False]})
        >>> enc = StaticEncoder().fit(users)
        >>> enc.names_, enc.transform(users).tolist()
        (['static:tier=gold', 'static:tier=none', 'static:app'], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    """

    def fit(self, users: pd.DataFrame) -> StaticEncoder:
        """Learn the columns and categories of ``users``."""
        self.columns_: list[tuple[str, list | None]] = []
        for c in users.columns:
            if c in _SKIP:
                continue
            s = users[c]
            if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
                self.columns_.append((c, None))
            else:
                self.columns_.append((c, sorted(s.dropna().astype(str).unique())))
        self.names_ = [f"static:{c}" if cats is None else f"static:{c}={v}"
                       for c, cats in self.columns_ for v in (cats or [None])]
        return self

    def transform(self, users: pd.DataFrame) -> np.ndarray:
        """Shape (len(users), len(names_)), float32; unseen categories are all-zero."""
        parts = []
        for c, cats in self.columns_:
            if c not in users:
                raise ValueError(f"users table lacks column {c!r} the encoder was fitted with")
            s = users[c]
            if cats is None:
                parts.append(pd.to_numeric(s, errors="coerce").fillna(0).to_numpy(float)[:, None])
            else:
                v = s.astype(str).to_numpy()
                parts.append(np.stack([v == x for x in cats], axis=1).astype(float))
        if not parts:
            return np.zeros((len(users), 0), np.float32)
        return np.concatenate(parts, axis=1).astype(np.float32)


class RuleValueModel:
    """Per-user return of each capped rule relative to rule ``reference``, from features.

    Args:
        reference: Index of the reference rule (its predicted gain is 0).
        seed: Seed of the trees' subsampling.
    """

    def __init__(self, reference: int, seed: int = 0) -> None:
        self.reference, self.seed = reference, seed

    def fit(self, x: np.ndarray, returns: np.ndarray) -> RuleValueModel:
        """``x`` (n, d) features; ``returns`` (n, R) return of each rule from the same users."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        gain = returns - returns[:, [self.reference]]
        self.models_: list = []
        for r in range(returns.shape[1]):
            if r == self.reference:
                self.models_.append(None)
                continue
            m = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.1,
                                              min_samples_leaf=100, l2_regularization=1.0,
                                              random_state=self.seed)
            self.models_.append(m.fit(x, gain[:, r]))
        return self

    def predict_gain(self, x: np.ndarray) -> np.ndarray:
        """Predicted gain over the reference of every rule, shape (n, R)."""
        return np.stack([np.zeros(len(x)) if m is None else m.predict(x)
                         for m in self.models_], axis=1)

    def assign(self, x: np.ndarray) -> np.ndarray:
        """The rule of highest predicted return per user, shape (n,)."""
        return self.predict_gain(x).argmax(axis=1)
