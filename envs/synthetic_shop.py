"""``nudgegym/SyntheticShop-v0``: one user of the synthetic shop, with its true dynamics."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from predictors import StartStates, World, WorldConfig, observation_names, sample_start_states


class SyntheticShopEnv(gym.Env):
    """One user of the synthetic shop, one step per weekly decision.

    The dynamics are those of :class:`predictors.synthetic.World` (the module docstring of
    ``predictors.synthetic.world`` has the equations); the agent sees only the observable
    history.

    ## Action Space
    ``Discrete(n_actions)``: the catalog index (default: ``none``, ``email``, ``push``,
    ``coupon_10``, ``coupon_20``).

    ## Observation Space
    ``Box(-inf, inf, (d,), float32)``: the observation vector of :mod:`predictors.features`
    (``observation_names()``), computed from the user's observable history only.

    ## Rewards
    Gross revenue of the period minus the send cost and the redeemed discount.

    ## Starting State
    Without options: a user drawn from the world, burnt in for ``world.burn_in`` unlogged
    periods, then ``observed_periods`` periods under the campaign logging policy that fill the
    observable history. ``options={"state": StartStates}`` (one user; e.g. a logged user from
    ``read_start_states``) starts there instead; ``options={"segment": i}`` draws the user
    from segment ``i``.

    ## Episode End
    Terminated when the user churns; truncated after ``horizon`` steps.

    ## Version History
    * v0: initial version.

    Args:
        world: World parameters.
        horizon: Steps before truncation.
        observed_periods: Tracked warm-up periods of a freshly drawn user.

    Example:
        >>> env = SyntheticShopEnv(horizon=3)
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape == env.observation_space.shape
        True
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, world: WorldConfig | None = None, horizon: int = 26,
                 observed_periods: int = 8) -> None:
        if horizon < 1:
            raise ValueError(f"`horizon` must be >= 1; got {horizon!r}")
        if observed_periods < 0:
            raise ValueError(f"`observed_periods` must be >= 0; got {observed_periods!r}")
        self.world = World(world)
        self.horizon = horizon
        self.observed_periods = observed_periods
        d = len(observation_names())
        self.action_space = gym.spaces.Discrete(self.world.n_actions)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(d,), dtype=np.float32)
        self._start: StartStates | None = None
        self._t = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode (see Starting State)."""
        super().reset(seed=seed)
        options = options or {}
        if "state" in options:
            start = options["state"]
            if not isinstance(start, StartStates) or start.n != 1:
                raise ValueError("options['state'] must be a StartStates of exactly 1 user")
            self._start = start.copy()
        else:
            self._start = self._draw(options.get("segment"))
        self._t = 0
        return self._obs(), {}

    def _draw(self, segment: int | None) -> StartStates:
        seg = None
        if segment is not None:
            if not 0 <= int(segment) < len(self.world.config.segments):
                raise ValueError(f"options['segment'] must be a segment index; got {segment!r}")
            seg = np.array([int(segment)])
        return sample_start_states(self.world, 1, self.np_random, self.observed_periods,
                                   segment=seg)

    def _obs(self) -> np.ndarray:
        assert self._start is not None
        return self._start.history.observation()[0]

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Advance one period."""
        if self._start is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in [0, {self.world.n_actions}); got {action!r}")
        out = self._start.advance(self.world, np.array([int(action)]), self.np_random)
        self._t += 1
        churned = bool(out["churned"][0])
        info = {"revenue": float(out["revenue"][0]), "cost": float(out["cost"][0]),
                "purchased": bool(out["purchases"][0] > 0), "churned": churned}
        return (self._obs(), float(out["reward"][0]), churned, self._t >= self.horizon, info)
