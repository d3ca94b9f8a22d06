"""Batched Monte-Carlo rollouts of the synthetic world: start states and true policy values.

A policy is a function of the observation matrix (n, d) of :mod:`predictors.features` returning
one action index per user. Oracle policies (``oracle=True``) are also given the true
:class:`~predictors.synthetic.world.WorldState` and the period index within the rollout:
``policy_fn(obs, state, t)``. The Gymnasium env steps the same :meth:`World.step`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from predictors.features import FeatureConfig, HistoryTracker
from predictors.synthetic.logging_policy import CampaignPolicy
from predictors.synthetic.world import World, WorldState

PolicyFn = Callable[..., np.ndarray]


@dataclass
class StartStates:
    """Where rollouts start: the latent state and the observable history of ``n`` users."""

    state: WorldState
    history: HistoryTracker

    @property
    def n(self) -> int:
        """Number of users."""
        return self.state.n

    def copy(self) -> StartStates:
        """A deep copy."""
        return StartStates(self.state.copy(), self.history.copy())

    def subset(self, index: np.ndarray) -> StartStates:
        """The users ``index`` (positions or boolean mask), copied."""
        return StartStates(self.state.subset(index), self.history.subset(index))

    def put(self, rows: np.ndarray, src: StartStates) -> None:
        """Overwrite users ``rows`` with the users of ``src`` (same length), in place."""
        for f in fields(self.state):
            getattr(self.state, f.name)[rows] = getattr(src.state, f.name)
        for k, v in src.history.arrays.items():
            self.history.arrays[k][rows] = v

    def advance(self, world: World, action: np.ndarray, rng: np.random.Generator | None,
                uniforms: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Step every user once (in place), record the history; return :meth:`World.step`'s
        (``uniforms``: the period's draws, as :meth:`World.step` takes them)."""
        out = world.step(self.state, action, rng, uniforms)
        track(self.history, out)
        return out


def track(history: HistoryTracker, out: dict[str, np.ndarray]) -> None:
    """Feed one :meth:`World.step` outcome to a history tracker."""
    history.update(out["visits"], out["views"], out["carts"], out["purchases"], out["revenue"],
                   out["action"], out["unsub_email"], out["unsub_push"])


def burn_in(world: World, state: WorldState, periods: int,
            rng: np.random.Generator) -> np.ndarray:
    """Run ``periods`` unlogged periods under the campaign rule, then reset the ``new`` segment.

    Users of a segment named ``new`` joined just now, so their dynamic state is fresh.

    Returns:
        Purchase events per user during the burn-in, shape (n,) (0 for ``new`` users): the
        shop's pre-log order history, which loyalty tiers are computed from.
    """
    policy = CampaignPolicy(world.config.actions)
    history = HistoryTracker(state.n, world.config.actions)
    orders = np.zeros(state.n)
    for _ in range(periods):
        action = policy.act(history.observation(), rng)
        out = world.step(state, action, rng)
        orders += out["purchases"]
        track(history, out)
    names = world.config.segment_names
    if "new" in names:
        fresh = state.segment == names.index("new")
        state.reset_dynamics(fresh)
        orders[fresh] = 0.0
    return orders


def sample_start_states(world: World, n: int, seed: int | np.random.Generator,
                        observed_periods: int = 8, features: FeatureConfig | None = None,
                        segment: np.ndarray | None = None) -> StartStates:
    """Fresh users after the world's burn-in plus ``observed_periods`` tracked periods.

    The observed periods run the campaign logging policy (no control group), so the
    observation at the start describes a realistic history. ``segment`` (n,) fixes the users'
    segment indices instead of drawing them by share.

    Example:
        >>> start = sample_start_states(World(), 10, seed=0, observed_periods=2)
        >>> start.n, start.history.observation().shape
        (10, (10, 37))
    """
    return sample_with_orders(world, n, np.random.default_rng(seed), observed_periods,
                              features, segment)[0]


def sample_with_orders(world: World, n: int, rng: np.random.Generator, observed_periods: int,
                       features: FeatureConfig | None = None,
                       segment: np.ndarray | None = None) -> tuple[StartStates, np.ndarray]:
    """:func:`sample_start_states` from a generator, plus the burn-in orders per user (n,)."""
    state = world.sample_users(n, rng, segment=segment)
    orders = burn_in(world, state, world.config.burn_in, rng)
    history = HistoryTracker(n, world.config.actions, features)
    policy = CampaignPolicy(world.config.actions, features=history.config)
    for _ in range(observed_periods):
        action = policy.act(history.observation(), rng)
        track(history, world.step(state, action, rng))
    return StartStates(state, history), orders


def policy_rewards(world: World, policy_fn: PolicyFn, start_states: StartStates, horizon: int,
                   seed: int | np.random.Generator, *, oracle: bool = False) -> np.ndarray:
    """Simulate ``policy_fn`` from copies of ``start_states``; rewards of shape (n, horizon).

    Reward = gross revenue - send cost - redeemed discount, per user and period.
    """
    if horizon < 1:
        raise ValueError(f"`horizon` must be >= 1; got {horizon!r}")
    rng = np.random.default_rng(seed)
    start = start_states.copy()
    state, history = start.state, start.history
    rewards = np.zeros((state.n, horizon))
    for t in range(horizon):
        obs = history.observation()
        action = policy_fn(obs, state, t) if oracle else policy_fn(obs)
        action = np.asarray(action)
        if action.shape != (state.n,) or not np.issubdtype(action.dtype, np.integer):
            raise ValueError(f"policy_fn must return {state.n} integer actions; got "
                             f"shape {action.shape}, dtype {action.dtype}")
        if action.min(initial=0) < 0 or action.max(initial=0) >= world.n_actions:
            raise ValueError(f"policy_fn actions must be in [0, {world.n_actions})")
        out = world.step(state, action, rng)
        track(history, out)
        rewards[:, t] = out["reward"]
    return rewards


def true_policy_value(world: World, policy_fn: PolicyFn, start_states: StartStates,
                      horizon: int, seed: int | np.random.Generator, *,
                      oracle: bool = False) -> np.ndarray:
    """Per-user undiscounted return of ``policy_fn`` over ``horizon`` periods, shape (n,).

    Its mean over users estimates the policy's true value with standard error
    ``returns.std(ddof=1) / sqrt(n)``.

    Example:
        >>> world = World()
        >>> start = sample_start_states(world, 50, seed=0, observed_periods=0)
        >>> never = lambda obs: np.zeros(len(obs), dtype=np.int64)
        >>> true_policy_value(world, never, start, horizon=4, seed=1).shape
        (50,)
    """
    return policy_rewards(world, policy_fn, start_states, horizon, seed,
                          oracle=oracle).sum(axis=1)


def greedy_policy(world: World) -> PolicyFn:
    """Oracle myopic policy: per user, the action of highest TRUE expected one-period reward."""

    def policy(obs: np.ndarray, state: WorldState, t: int) -> np.ndarray:
        return world.expected_reward_table(state).argmax(axis=1)

    return policy


def schedule_policy(action: int, every: int, phase: int = 0) -> PolicyFn:
    """Observation-free schedule: ``action`` at periods t with ``t % every == phase``."""

    def policy(obs: np.ndarray, state: WorldState, t: int) -> np.ndarray:
        a = action if t % every == phase else 0
        return np.full(len(obs), a, dtype=np.int64)

    return policy


def segment_schedule_policy(schedules: dict[int, tuple[int, int]]) -> PolicyFn:
    """Oracle policy: segment index -> (action, every) schedule, by the TRUE segment."""

    def policy(obs: np.ndarray, state: WorldState, t: int) -> np.ndarray:
        out = np.zeros(state.n, dtype=np.int64)
        for seg, (action, every) in schedules.items():
            if t % every == 0:
                out[state.segment == seg] = action
        return out

    return policy
