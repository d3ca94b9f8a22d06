r"""Common-random-number branch rollouts in the learned shop.

The learned shop (:class:`envs.simulator.ShopSimulator`) can be branched like the true world:
load a copy of the same users per action, and step every copy with generators of the same
seed. What makes the branches share their random numbers:

* Within one period, :meth:`~envs.simulator.ShopSimulator.step` draws the same number of
  values in the same order whatever the actions: the ensemble member (one ``integers(0, K, n)``
  call), then the outcome (:meth:`predictors.models.predictor.Predictions.sample`: visit,
  purchase, log-revenue, unsubscribe, churn label, each one ``(n,)`` block), then the churn
  event (one ``(n,)`` block). So a given user's uniforms are the same in every branch.
* The last draw of a period, the views / carts / favs counts, inverts the Poisson CDF at a
  fixed block of ``(n, 3)`` uniforms (:meth:`envs.simulator.ActivityModel.sample`), so it too
  consumes the same numbers in every branch; the counts are common whenever the visit and
  purchase are. The branches use one fresh generator per period, ``default_rng([seed, 0,
  k])`` at step ``k`` (from when these counts were drawn by ``Generator.poisson``, whose
  consumption depends on the means): every period starts in step in every branch either way,
  and the shop's own stepping (one generator for the whole run) is left unchanged.

Rewards are the shop's expected one-period reward (``expected_reward`` of ``step``: the
capped log-normal revenue mean times the purchase probability, less discount and send cost, for
the action taken, the MOPO penalty included when set) or the sampled one.

Frequency caps: an action the caps refuse is replaced by ``none`` (as ``invalid_action="noop"``
does), both as the branch's first action and for the follow-up policy, which also gets the
masks.

Safety (:class:`ShopBranchConfig`). The exact improvement of a rule in the shop exploits the
shop's errors: its errors about contacts compound over a long rollout and are largest for
histories the log never holds. Two conservative reshapings of the measured returns, offline-RL
style, keep the step where the shop is trusted; both act on the targets only, so
:func:`~agents.rollout_improvement.improve_by_branches` is unchanged:

* ``horizon`` (short model rollouts, as MBPO keeps them): an action's advantage over the
  follow-up policy's own action is counted over the first ``horizon`` periods of the branch only
  (common random numbers in both), while the level stays the follow-up action's full return;
  later differences are where the shop's errors have compounded.
* ``support`` (BCQ's support constraint): the logging policy is known (the logs carry its
  propensities), so an action the logging policy rarely takes in that state
  (``pi_b(a|s) < support_ratio * max_a pi_b(a|s)``) is valued at the follow-up action's
  return less ``support_gap`` whatever the shop measures for it (BRAC-style value penalty): the
  improved policy may leave its own action only for an action the logs support, and the gap
  keeps the fitted Q-network's argmax off the unsupported actions (a tie would leave it to
  the fit's errors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.policy import BasePolicy
from envs.simulator import ShopSimulator, StartStates
from predictors import check_choice, check_int, check_number
from predictors.errors import ConfigError

__all__ = ["ShopBranchConfig", "ShopBranchStates", "ShopBranches", "shop_branch_config"]


@dataclass(frozen=True)
class ShopBranchConfig:
    """Safety options of the learned shop's branches (``warm_start.shop`` in a YAML).

    Attributes:
        horizon: Periods over which an action's advantage over the follow-up policy's own
            action is counted (the level stays that action's return to the episode's end);
            0: to the episode's end (the plain rollout).
        support: ``none``, or ``logging``: an action off the logging policy's support in
            that state is valued at most at the follow-up action's return.
        support_policy: The logging policy (``rule:NAME...``, as ``--policy`` takes it), or
            ``auto``: the dataset's own (:func:`agents.logged_policy.logging_rule`: a
            synthetic shop's recorded logging rule, else ``rule:logged``, estimated from the
            logs).
        support_ratio: An action is on the support where the logging policy's probability
            of it is at least this share of its most likely action's.
        support_gap: Money by which an unsupported action is valued below the follow-up
            policy's own action.
    """

    horizon: int = 0
    support: str = "none"
    support_policy: str = "auto"
    support_ratio: float = 0.3
    support_gap: float = 2.0

    def __post_init__(self) -> None:
        check_int(self, "horizon", ge=0)
        check_choice(self, "support", ("none", "logging"))
        check_number(self, "support_ratio", gt=0, le=1)
        check_number(self, "support_gap", gt=0)
        if not isinstance(self.support_policy, str) or not self.support_policy:
            raise ConfigError("`support_policy` must be 'auto' or a policy such as "
                              "'rule:campaign'; "
                              f"got {self.support_policy!r}")

    @property
    def active(self) -> bool:
        """Whether the returns are reshaped at all."""
        return self.horizon > 0 or self.support != "none"


def shop_branch_config(mapping: dict[str, Any] | None) -> ShopBranchConfig:
    """A :class:`ShopBranchConfig` from the YAML mapping ``warm_start.shop``.

    Raises:
        ConfigError: Not a mapping, an unknown key or a bad value (named).
    """
    mapping = {} if mapping is None else mapping
    if not isinstance(mapping, dict):
        raise ConfigError(f"`warm_start.shop` must be a mapping; got {type(mapping).__name__}")
    known = {"horizon", "support", "support_policy", "support_ratio", "support_gap"}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ConfigError(f"`warm_start.shop` keys {unknown} are unknown; allowed: "
                          f"{sorted(known)}")
    try:
        return ShopBranchConfig(**mapping)
    except (TypeError, ValueError) as e:  # the YAML key in full (`horizon` is also an option)
        msg = re.sub(r"`([a-z_]+)`", lambda m: f"`warm_start.shop.{m.group(1)}`"
                     if m.group(1) in known else m.group(0), str(e))
        raise ConfigError(msg) from None


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
        config: Safety options (default: none, the plain rollout).
        data: Dataset folder, for a support policy that fits a model there.

    Raises:
        ConfigError: A support policy that cannot be loaded for the shop's observation.
    """

    def __init__(self, simulator: ShopSimulator, starts: StartStates,
                 config: ShopBranchConfig | None = None, data: Any = None) -> None:
        self.simulator, self.starts = simulator, starts
        self.n_actions = simulator.n_actions
        self.config = config or ShopBranchConfig()
        self.support_policy: BasePolicy | None = None
        #: The support policy's name once ``auto`` is resolved (``None`` without support).
        self.support_rule: str | None = None
        if self.config.support == "logging":
            from agents.loading import load_policy
            from agents.logged_policy import logging_rule

            name = self.config.support_policy
            if name == "auto":
                name = logging_rule(simulator.spec)
            try:
                self.support_policy = load_policy(name, simulator.spec,
                                                  simulator.observation_names, data)
            except (ValueError, OSError) as e:
                raise ConfigError(f"`warm_start.shop.support_policy` "
                                  f"{self.config.support_policy!r} ({name}): {e}") from None
            self.support_rule = name

    def supported(self, obs: np.ndarray) -> np.ndarray:
        """``(n, n_actions)`` bool: the actions on the logging policy's support (all where
        ``support`` is ``none``)."""
        if self.support_policy is None:
            return np.ones((len(obs), self.n_actions), bool)
        p = np.asarray(self.support_policy.action_probabilities(obs), float)
        return p >= self.config.support_ratio * p.max(axis=1, keepdims=True)

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
        """Return of "action ``a`` now, then ``policy``" to the episode's end, every ``a``,
        reshaped by the safety options (:class:`ShopBranchConfig`; ``actions`` must then be
        all of them, once each, in order).

        Returns:
            Undiscounted returns, shape ``(n, len(actions))``.
        """
        first = np.arange(self.n_actions) if actions is None else np.asarray(actions)
        if not self.config.active:
            return self._returns(states, policy, seed, reward, first)[0]
        if not np.array_equal(first, np.arange(self.n_actions)):
            raise ValueError("safe branches value every action: pass `actions=None`")
        full, short = self._returns(states, policy, seed, reward, first)
        obs = self.observe(states)
        # the follow-up policy's own action as its branches take it (capped actions: none)
        own = self._act(states.sim, policy, np.random.default_rng(0))
        rows = np.arange(len(own))
        out = full.copy()
        if self.config.horizon > 0:
            out = full[rows, own][:, None] + short - short[rows, own][:, None]
        off = ~self.supported(obs)
        off[rows, own] = False
        return np.where(off, out[rows, own][:, None] - self.config.support_gap, out)

    def _returns(self, states: ShopBranchStates, policy: BasePolicy, seed: int, reward: str,
                 first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns to the episode's end and over the first ``config.horizon`` periods."""
        base = states.sim
        n = base.n
        out = np.zeros((n, len(first)))
        short = np.zeros((n, len(first)))
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
                r = np.where((k < states.remaining) & alive, step[key], 0.0)
                out[:, j] += r
                if k < self.config.horizon:
                    short[:, j] += r
                alive &= ~step["terminated"]
        return out, short
