"""Fixed-horizon rollouts of every start user at once in the learned shop (no auto-reset).

Used by evaluation and the fidelity report: each start user is simulated once per replicate for
``horizon`` periods from the same start state; a user whose episode terminated (a churn event
under ``churn="terminate"``) contributes nothing afterwards.
With the same ``seed``, two policies see the same start users in the same order and the same
random stream layout (common random numbers: differences between policies come from the
policies, not from the draw of users).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from envs.shop_env import LearnedShop

#: ``policy(obs (n, d), action_mask (n, A), rng) -> actions (n,)``; or, for open-loop replay, a
#: ``(n, horizon)`` array of actions.
PolicyFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Rollout:
    """Per user and period arrays ``(n, horizon)`` of a rollout (0 after termination).

    Attributes:
        user_ids: ``(n,)`` start user of each row.
        reward, revenue, cost: Money per period.
        visit, purchase, unsubscribe, churn, alive: Indicators (``churn``: the predictor's
            churn event; ``alive``: before termination).
        action: Action taken (-1 after termination).
        p_purchase: Probability of the period's purchase given the state and action (the
            Rao-Blackwellised purchase: its sum over a path has the same expectation as the
            drawn purchases' sum, with less noise).
    """

    user_ids: np.ndarray
    reward: np.ndarray
    revenue: np.ndarray
    cost: np.ndarray
    visit: np.ndarray
    purchase: np.ndarray
    unsubscribe: np.ndarray
    churn: np.ndarray
    alive: np.ndarray
    action: np.ndarray
    p_purchase: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        """Undiscounted return per user ``(n,)``."""
        return self.reward.sum(axis=1)


def rollout(shop: LearnedShop, policy: PolicyFn | np.ndarray, horizon: int = 26, *,
            seed: int = 0, replicates: int = 1, start_index: np.ndarray | None = None,
            batch_size: int = 16384, no_purchase: bool = False) -> Rollout:
    """Simulate every start user (``replicates`` times) for ``horizon`` periods.

    Args:
        shop: The learned shop.
        policy: A policy function, or an ``(n_starts, horizon)`` int array of actions to replay
            (negative = ``none``).
        horizon: Periods per episode.
        seed: Seed of the simulator's draws and the policy's generator.
        replicates: Copies of each start user.
        start_index: Which start users (default all).
        batch_size: Users simulated together.
        no_purchase: Draw every period given no purchase (:meth:`ShopSimulator.step`): the
            product of ``1 - p_purchase`` along a path estimates P(no purchase in the horizon).
    """
    starts = shop.starts
    idx = np.arange(len(starts)) if start_index is None else np.asarray(start_index)
    src = np.tile(idx, replicates)
    sim = shop.simulator.clone()
    none = sim.none_index if sim.none_index is not None else 0
    fields = ("reward", "revenue", "cost", "visit", "purchase", "unsubscribe", "churn",
              "p_purchase")
    res = {f: np.zeros((len(src), horizon)) for f in fields}
    alive_all = np.zeros((len(src), horizon), bool)
    action_all = np.full((len(src), horizon), -1, np.int64)
    ss = np.random.SeedSequence(seed)
    for b, (sim_seed, pol_seed) in zip(range(0, len(src), batch_size),
                                       _pairs(ss, -(-len(src) // batch_size)), strict=False):
        rows = slice(b, b + batch_size)
        part = src[rows]
        rng, prng = np.random.default_rng(sim_seed), np.random.default_rng(pol_seed)
        sim.load(starts, part)
        alive = np.ones(len(part), bool)
        for t in range(horizon):
            if isinstance(policy, np.ndarray):
                a = policy[part, t].astype(np.int64)
                a = np.where(a < 0, none, a)
            else:
                a = np.asarray(policy(sim.observation(), sim.action_masks(), prng), np.int64)
            out = sim.step(a, rng, no_purchase=no_purchase)
            for f in fields:
                res[f][rows, t] = np.where(alive, out[f], 0)
            alive_all[rows, t] = alive
            action_all[rows, t] = np.where(alive, a, -1)
            alive = alive & ~out["terminated"]
    return Rollout(starts.user_ids[src], alive=alive_all, action=action_all,
                   **{f: res[f] for f in fields})


def _pairs(ss: np.random.SeedSequence, n: int) -> list[tuple[np.random.SeedSequence, ...]]:
    kids = ss.spawn(2 * n)
    return [(kids[2 * i], kids[2 * i + 1]) for i in range(n)]
