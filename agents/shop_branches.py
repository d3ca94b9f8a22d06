r"""Common-random-number branch rollouts in the learned shop.

The learned shop (:class:`envs.simulator.ShopSimulator`) can be branched like the true world:
load a copy of the same users per action, and step every copy with generators of the same
seed. What makes the branches share their random numbers:

* Within one period, :meth:`~envs.simulator.ShopSimulator.step` draws the same number of
  values in the same order whatever the actions: the ensemble member (one ``integers(0, K, n)``
  call), then the outcome (:meth:`predictors.models.predictor.Predictions.sample`: visit,
  purchase, log-revenue, unsubscribe, churn label, each one ``(n,)`` block), then the churn
  event (one ``(n,)`` block). So a given user's uniforms are the same in every branch.
* The last draw of a period, the views / carts / favs counts (``rng.poisson`` with a mean
  given the drawn visit and purchase), consumes a number of underlying random values that
  depends on those means, so ONE generator over several periods would drift out of step
  between branches whose outcomes differ. The branches therefore use one fresh generator per
  period, ``default_rng([seed, 0, k])`` at step ``k``: every period starts in step in every
  branch, and the shop's own stepping (one generator for the whole run) is left unchanged.
  The counts themselves are common whenever the visit and purchase are.

Rewards are the shop's expected one-period reward (``expected_reward`` of ``step``: the
capped log-normal revenue mean times the purchase probability, less discount and send cost, for
the action taken, the MOPO penalty included when set) or the sampled one.

Frequency caps: an action the caps refuse is replaced by ``none`` (as ``invalid_action="noop"``
does), both as the branch's first action and for the follow-up policy, which also gets the
masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.policy import BasePolicy
from envs.simulator import ShopSimulator, StartStates

__all__ = ["ShopBranchStates", "ShopBranches"]


@dataclass
class ShopBranchStates:
    """Sampled learned-shop states.

    Attributes:
        sim: A simulator loaded with the users at their sampled period (its ``t`` is each
            user's period in the episode).
        remaining: Periods left in the episode (``T - t``, >= 1), shape (n,).
    """

    sim: ShopSimulator
    remaining: np.ndarray


def _as_starts(sim: ShopSimulator) -> StartStates:
    """The simulator's current users as start states (``load`` / ``replace`` copy them)."""
    return StartStates(np.arange(sim.n), 0, sim.tracker, sim.state, sim.static, sim.unsub,
                       sim.since_coupon, sim.contacts)


class ShopBranches:
    """Branch source of :func:`agents.rollout_improvement.improve_by_branches` in the shop.

    Args:
        simulator: The learned shop's simulator (cloned; its users are not touched).
        starts: Start users.
    """

    def __init__(self, simulator: ShopSimulator, starts: StartStates) -> None:
        self.simulator, self.starts = simulator, starts
        self.n_actions = simulator.n_actions

    def _allowed(self, sim: ShopSimulator, action: np.ndarray) -> np.ndarray:
        if not sim.caps.active or sim.none_index is None:
            return action
        ok = sim.action_masks()[np.arange(sim.n), action]
        return np.where(ok, action, sim.none_index)

    def _act(self, sim: ShopSimulator, policy: BasePolicy, rng: np.random.Generator
             ) -> np.ndarray:
        mask = sim.action_masks() if sim.caps.active else None
        a = np.asarray(policy.act(sim.observation(), rng, mask), np.int64)
        return self._allowed(sim, a)

    def sample_states(self, policy: BasePolicy, horizon: int, n_states: int,
                      rng: np.random.Generator) -> ShopBranchStates:
        """Run ``policy`` from random start users for a uniform number of periods in
        ``[0, horizon)`` (under ``churn="terminate"`` a user is not stopped at its churn
        event here; its branches stop there)."""
        src = rng.integers(len(self.starts), size=n_states)
        t_stop = rng.integers(horizon, size=n_states)
        sim, snap = self.simulator.clone(), self.simulator.clone()
        sim.load(self.starts, src)
        snap.load(self.starts, src)
        last = int(t_stop.max(initial=0))
        for t in range(last + 1):
            rows = np.flatnonzero(t_stop == t)
            if len(rows):
                snap.replace(rows, _as_starts(sim), rows)
            if t == last:
                break
            sim.step(self._act(sim, policy, rng), rng)
        snap.t = t_stop.astype(np.int64)
        return ShopBranchStates(snap, horizon - t_stop)

    def observe(self, states: ShopBranchStates) -> np.ndarray:
        """Observations of the sampled states."""
        return states.sim.observation().astype(np.float32)

    def branch_returns(self, states: ShopBranchStates, policy: BasePolicy, seed: int,
                       reward: str = "expected", actions: np.ndarray | None = None
                       ) -> np.ndarray:
        """Return of "action ``a`` now, then ``policy``" to the episode's end, every ``a``.

        Returns:
            Undiscounted returns, shape ``(n, len(actions))``.
        """
        first = np.arange(self.n_actions) if actions is None else np.asarray(actions)
        base = states.sim
        n = base.n
        out = np.zeros((n, len(first)))
        steps = int(states.remaining.max(initial=0))
        key = "expected_reward" if reward == "expected" else "reward"
        for j, a in enumerate(first):
            sim = base.clone()
            sim.load(_as_starts(base), np.arange(n))
            sim.t = base.t.copy()
            policy_rng = np.random.default_rng([seed, 1])
            alive = np.ones(n, bool)
            for k in range(steps):
                action = (self._allowed(sim, np.full(n, int(a), np.int64)) if k == 0
                          else self._act(sim, policy, policy_rng))
                step = sim.step(action, np.random.default_rng([seed, 0, k]))
                out[:, j] += np.where((k < states.remaining) & alive, step[key], 0.0)
                alive &= ~step["terminated"]
        return out
