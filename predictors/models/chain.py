"""A large panel drawn from a known action-conditioned Markov chain (benchmarks, known answers).

Unlike :func:`~predictors.models.toy_panel` (a per-row loop for tiny tests), this draws every
user at once per period, so 10 million user-periods take seconds. Every user is present in every
period. Each period a uniformly random action is logged (propensity ``1 / n_actions``) and, given
the previous period's behavior level ``l`` (0 none, 1 visited, 2 carted, 3 purchased; a user's
first period counts as ``none``), the action ``a`` and the user's segment ``g``::

    P(visit)              = sigmoid(VISIT_BASE + LEVEL_EFFECT[l] + lift[a] + SEGMENT_EFFECT * g)
    P(cart | visit)       = CART_RATE
    P(purchase | visit)   = BUY_RATE[l]
    log revenue | purchase ~ Normal(3 + 0.3 g, 0.5)

A user leaves for good with hazard ``churn`` per period. With ``segments=False`` and
``churn=0`` the next period depends on the previous level and the action only, so
:func:`chain_probabilities` is the exact answer a first-order ``markov`` predictor must recover.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

VISIT_BASE = -1.5
LEVEL_EFFECT = np.array([0.0, 1.0, 1.4, 1.8])
SEGMENT_EFFECT = 0.8
CART_RATE = 0.5
BUY_RATE = np.array([0.25, 0.3, 0.4, 0.45])


def chain_probabilities(prev_level: np.ndarray, action: np.ndarray,
                        lift: tuple[float, ...], segment: np.ndarray | int = 0,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """True ``(P(visit), P(purchase))`` of a period given the previous level and the action."""
    prev_level, action = np.asarray(prev_level), np.asarray(action)
    logit = VISIT_BASE + LEVEL_EFFECT[prev_level] + np.asarray(lift)[action] \
        + SEGMENT_EFFECT * np.asarray(segment)
    p_visit = 1.0 / (1.0 + np.exp(-logit))
    return p_visit, p_visit * BUY_RATE[prev_level]


def chain_panel(n_users: int = 1000, n_periods: int = 20, seed: int = 0,
                lift: tuple[float, ...] = (0.0, 0.5, 1.0), churn: float = 0.02,
                segments: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate ``(panel, users)``: ``n_users * n_periods`` rows sorted by user and period.

    Args:
        n_users: Users (all present from period 0).
        n_periods: Periods.
        seed: Seed of the simulation.
        lift: Logit lift of P(visit) per action index (action 0 is ``none``).
        churn: Per-period hazard of leaving for good.
        segments: Two latent segments with different visit rates (shown in ``users``).

    Returns:
        The panel (columns of :data:`~predictors.models.sequence.PANEL_COLUMNS` plus ``action``
        and ``prev_level``, the previous period's level the truth depends on) and the users table
        (``user_id``, ``segment``).

    Example:
        >>> panel, users = chain_panel(n_users=3, n_periods=2, seed=0)
        >>> len(panel), list(panel.columns[:2])
        (6, ['user_id', 'period'])
    """
    if n_users < 1 or n_periods < 1:
        raise ValueError(f"`n_users` and `n_periods` must be >= 1; got {n_users}, {n_periods}")
    if not 0.0 <= churn < 1.0:
        raise ValueError(f"`churn` must be in [0, 1); got {churn}")
    rng = np.random.default_rng(seed)
    n_act = len(lift)
    segment = rng.integers(0, 2, n_users) if segments else np.zeros(n_users, np.int64)
    shape = (n_periods, n_users)
    action = rng.integers(0, n_act, shape).astype(np.int16)
    visit, cart, buy = (np.zeros(shape, bool) for _ in range(3))
    unsub = np.zeros(shape, bool)
    prev = np.zeros(shape, np.int8)
    level = np.zeros(n_users, np.int8)
    alive = np.ones(n_users, bool)
    for t in range(n_periods):
        prev[t] = level
        p_visit, _ = chain_probabilities(level, action[t], lift, segment)
        visit[t] = alive & (rng.random(n_users) < p_visit)
        cart[t] = visit[t] & (rng.random(n_users) < CART_RATE)
        buy[t] = visit[t] & (rng.random(n_users) < BUY_RATE[level])
        unsub[t] = visit[t] & (action[t] > 0) & (rng.random(n_users) < 0.01)
        level = np.where(buy[t], 3, np.where(cart[t], 2, visit[t].astype(np.int8))).astype(np.int8)
        if churn > 0:
            alive &= rng.random(n_users) >= churn
    revenue = np.where(buy, np.exp(rng.normal(3.0 + 0.3 * segment, 0.5, shape)), 0.0)
    views = np.where(visit, 1 + rng.poisson(2.0, shape), 0)
    active = np.maximum.accumulate(visit[::-1], axis=0)[::-1]

    def col(x: np.ndarray, dtype: str) -> np.ndarray:
        return np.ascontiguousarray(x.T).reshape(-1).astype(dtype, copy=False)

    panel = pd.DataFrame({
        "user_id": np.repeat(np.arange(n_users, dtype=np.int64), n_periods),
        "period": np.tile(np.arange(n_periods, dtype=np.int32), n_users),
        "visits": col(visit, "int32"), "views": col(views, "int32"),
        "carts": col(cart, "int32"), "purchases": col(buy, "int32"),
        "favs": np.zeros(n_users * n_periods, np.int32), "unsubscribes": col(unsub, "int32"),
        "revenue": col(revenue, "float64"), "action_index": col(action, "int16"),
        "propensity": np.full(n_users * n_periods, 1.0 / n_act, np.float32),
        "active": col(active, "bool"), "prev_level": col(prev, "int8"),
    })
    names = np.array(["none"] + [f"a{i}" for i in range(1, n_act)])
    panel["action"] = pd.Categorical.from_codes(panel["action_index"].to_numpy(), names)
    users = pd.DataFrame({"user_id": np.arange(n_users), "segment": segment.astype(str)})
    return panel, users
