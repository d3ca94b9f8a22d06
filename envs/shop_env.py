"""Gymnasium and SB3 environments of the learned shop (built from a predictor run + a dataset).

* :class:`ShopEnv` - one user per episode, a ``gymnasium.Env`` (registered ``nudgegym/Shop-v0``).
* :class:`ShopVecEnv` - N users stepped together, an SB3 ``VecEnv`` with one predictor forward
  per step; finished users restart at once from a fresh start state (SB3 auto-reset semantics,
  with ``terminal_observation`` and ``TimeLimit.truncated`` in their infos).

Both share :class:`envs.simulator.ShopSimulator` and a :class:`LearnedShop` bundle, so their
dynamics are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from envs.batched import BatchedVecEnv
from envs.simulator import (
    ActivityModel,
    CapConfig,
    ShopSimulator,
    StartStates,
    build_start_states,
)
from predictors import (
    DatasetSpec,
    FeatureConfig,
    build_panel,
    load_users,
    open_dataset,
)
from predictors.models import BehaviorPredictor, PredictorEnsemble, is_ensemble_folder


@dataclass
class LearnedShop:
    """Everything a learned-shop env needs: the simulator and the users it starts from."""

    simulator: ShopSimulator
    starts: StartStates
    spec: DatasetSpec

    @property
    def observation_names(self) -> list[str]:
        """Names of the observation vector's entries, in order."""
        return self.simulator.observation_names


def load_learned_shop(predictor: str | Path | BehaviorPredictor, data: str | Path, *,
                      start_period: int | None = None, horizon: int = 26,
                      start_users: str = "test", caps: CapConfig | None = None,
                      device: str = "cpu",
                      feature_config: FeatureConfig | None = None,
                      static_in_obs: bool = False, churn: str = "implicit",
                      panel: pd.DataFrame | None = None,
                      penalty: float = 0.0) -> LearnedShop:
    """Build the learned shop from a predictor run folder and its dataset folder.

    Args:
        predictor: Predictor run folder (``nudgegym train-predictor --out``) or a fitted one.
        data: Dataset folder the predictor was trained on (or another with the same catalog).
        start_period: Episodes start from users' histories before this period; default the
            end of the log (the dataset's last period + 1): where the customers are now. The
            fidelity report starts ``horizon`` periods earlier, so logged behaviour follows.
        horizon: Episode length (informational here; the envs take their own).
        start_users: ``test`` (the predictor's held-out users; the default), ``val``, ``train``
            or ``all``.
        caps: Frequency caps (action masks).
        device: Device of the predictor's forward passes.
        feature_config: Observation options.
        static_in_obs: Append the users' encoded static features (``static:COL``,
            ``static:COL=VALUE``) to the observation. Off by default: static features shape
            the simulated behaviour through the predictor either way, and without them the
            observation is computed from history alone, identically by the true world env,
            off-policy evaluation on the logs and a serving system.
        penalty: With an ensemble predictor (a folder with ``ensemble.json``), subtract
            ``penalty`` x the members' spread of expected revenue from each step's reward
            (MOPO-style uncertainty penalty); 0 leaves the reward as is.
    """
    if not penalty >= 0:
        raise ValueError(f"`penalty` must be >= 0; got {penalty!r}")
    if isinstance(predictor, (BehaviorPredictor, PredictorEnsemble)):
        pred = predictor
    elif is_ensemble_folder(predictor):
        pred = PredictorEnsemble.load(predictor, device=device)
    else:
        pred = BehaviorPredictor.load(predictor, device=device)
    ds = open_dataset(data)
    if panel is None:
        panel = build_panel(ds)
    users = load_users(ds, validate=False)
    last = int(panel["period"].max())
    t0 = last + 1 if start_period is None else int(start_period)
    if not 1 <= t0 <= last + 1:
        raise ValueError(f"`start_period` must be in [1, {last + 1}]; got {t0}")
    ids = _start_user_ids(pred, panel, start_users, t0)
    starts = build_start_states(pred, panel, ds.spec, ids, t0, users, feature_config,
                                static_in_obs=static_in_obs)
    sim = ShopSimulator(pred, ds.spec, ActivityModel.fit(panel), caps, feature_config,
                        static_in_obs, churn)
    sim.penalty = float(penalty)
    return LearnedShop(sim, starts, ds.spec)


def _start_user_ids(pred: BehaviorPredictor, panel: pd.DataFrame, which: str,
                    t0: int) -> np.ndarray:
    present = panel.loc[panel["period"] < t0, "user_id"].unique()
    if which == "all":
        ids = present
    else:
        split = getattr(pred, "split_", None)
        if split is None:
            raise ValueError("the predictor has no saved user split; use start_users='all'")
        if which not in set(split["split"]):
            raise ValueError(f"`start_users` must be one of {sorted(set(split['split']))} "
                             f"or 'all'; got {which!r}")
        chosen = split.loc[split["split"] == which, "user_id"].to_numpy()
        ids = np.intersect1d(chosen, present)
    if len(ids) == 0:
        raise ValueError(f"no '{which}' users have history before period {t0}")
    return np.sort(ids)


class ShopEnv(gym.Env):
    """One user of the learned shop per episode.

    Action Space:
        ``Discrete(n_actions)``: the dataset's action catalog in order (e.g. none, email, push,
        coupon_10, coupon_20). With frequency caps, :meth:`action_masks` tells the allowed
        actions; a refused action raises ``ValueError`` (``invalid_action="raise"``) or is
        replaced by ``none`` with ``info["refused"] = True`` (``"noop"``).

    Observation Space:
        ``Box(-inf, inf, (d,), float32)``: :func:`predictors.observation_names` (recency,
        frequency, monetary, last periods' summaries, contacts and coupons in recent windows,
        response to past contacts, channel status, tenure), optionally followed by the
        encoded static features (``static_in_obs``); ``observation_names`` lists them. Only
        observable history enters it.

    Rewards:
        Revenue of the period minus the intervention's cost (send cost, plus the discount on the
        basket when a coupon is redeemed), in the dataset's currency.

    Starting State:
        A user drawn uniformly from the start users (default: the predictor's held-out users)
        as they stood at the start period, history replayed through the predictor.

    Episode End:
        Truncated after ``horizon`` periods (default 26). Terminated on a churn event of the
        predictor's churn head only with ``churn="terminate"``; by default churn acts through
        the predicted behaviour itself (see :mod:`envs.simulator`).

    Version History:
        v0: first version.
    """

    metadata = {"render_modes": []}

    def __init__(self, shop: LearnedShop, horizon: int = 26, invalid_action: str = "raise") -> None:
        if horizon < 1:
            raise ValueError(f"`horizon` must be >= 1; got {horizon}")
        if invalid_action not in ("raise", "noop"):
            raise ValueError(f"`invalid_action` must be 'raise' or 'noop'; got {invalid_action!r}")
        # Each env owns its users: a clone shares the predictor, not the per-user state.
        self.shop, self.sim, self.horizon = shop, shop.simulator.clone(), horizon
        self.invalid_action = invalid_action
        self.observation_names = list(shop.observation_names)
        self.action_names = list(shop.spec.action_names)
        self.action_space = spaces.Discrete(self.sim.n_actions)
        self.observation_space = spaces.Box(-np.inf, np.inf, (len(self.observation_names),),
                                            np.float32)
        self.render_mode = None
        self._ready = False

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        options = options or {}
        j = options.get("start_index")
        if j is None:
            j = int(self.np_random.integers(len(self.shop.starts)))
        self.sim.load(self.shop.starts, np.array([j]))
        self._ready = True
        return self.sim.observation()[0], {"user_id": self.shop.starts.user_ids[j]}

    def action_masks(self) -> np.ndarray:
        """``(n_actions,)`` bool: actions the frequency caps allow now."""
        return self.sim.action_masks()[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        a = int(action)
        if not 0 <= a < self.sim.n_actions:
            raise ValueError(f"`action` must be in [0, {self.sim.n_actions}); got {action!r}")
        refused = not self.action_masks()[a]
        if refused:
            if self.invalid_action == "raise":
                raise ValueError(f"action {self.action_names[a]!r} is refused by the frequency "
                                 f"caps now ({self.sim.caps}); check action_masks()")
            a = self.sim.none_index if self.sim.none_index is not None else a
        out = self.sim.step(np.array([a]), self.np_random)
        terminated = bool(out["terminated"][0])
        truncated = bool(self.sim.t[0] >= self.horizon) and not terminated
        if terminated or truncated:
            self._ready = False
        info = {k: (float(v[0]) if v.dtype.kind == "f" else bool(v[0])) for k, v in out.items()
                if k != "reward"}
        info["refused"] = refused
        return self.sim.observation()[0], float(out["reward"][0]), terminated, truncated, info


class ShopVecEnv(BatchedVecEnv):
    """N users of the learned shop stepped together (SB3 ``VecEnv``), one forward per step.

    Each slot is one user; when a user churns or reaches the horizon the slot restarts from a
    start user drawn at random. Same dynamics as :class:`ShopEnv`. Per-step arrays of the last
    step (revenue, cost, purchase ...) are in :attr:`last_step` for evaluation code that wants
    them without per-user info dicts.

    Args:
        shop: From :func:`load_learned_shop`.
        n_envs: Number of simultaneous users.
        horizon: Episode length in periods.
        seed: Seed of the simulator's generator (also settable by ``seed()`` before reset).
        invalid_action: ``raise`` or ``noop`` for actions the caps refuse.
        reward: ``sampled`` (the period's drawn reward) or ``expected`` (its expectation
            under the predictor given the state and the action taken: revenue - cost -
            discount without the draw's noise; a training signal, the dynamics are unchanged).
    """

    def __init__(self, shop: LearnedShop, n_envs: int = 1024, horizon: int = 26,
                 seed: int | None = None, invalid_action: str = "raise",
                 reward: str = "sampled") -> None:
        if n_envs < 1:
            raise ValueError(f"`n_envs` must be >= 1; got {n_envs}")
        if reward not in ("sampled", "expected"):
            raise ValueError(f"`reward` must be 'sampled' or 'expected'; got {reward!r}")
        self.reward_kind = reward
        if invalid_action not in ("raise", "noop"):
            raise ValueError(f"`invalid_action` must be 'raise' or 'noop'; got {invalid_action!r}")
        self.shop, self.sim, self.horizon = shop, shop.simulator.clone(), horizon
        self.invalid_action = invalid_action
        self.observation_names = list(shop.observation_names)
        self.render_mode = None
        obs_space = spaces.Box(-np.inf, np.inf, (len(self.observation_names),), np.float32)
        super().__init__(n_envs, obs_space, spaces.Discrete(self.sim.n_actions))
        self._rng = np.random.default_rng(seed)
        self._actions = np.zeros(n_envs, np.int64)
        self.last_step: dict[str, np.ndarray] = {}

    def reset(self) -> VecEnvObs:
        src = self._rng.integers(len(self.shop.starts), size=self.num_envs)
        self.sim.load(self.shop.starts, src)
        return self.sim.observation()

    def action_masks(self) -> np.ndarray:
        """``(n_envs, n_actions)`` bool, as sb3-contrib's MaskablePPO expects."""
        return self.sim.action_masks()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs).astype(np.int64)

    def step_wait(self) -> VecEnvStepReturn:
        a = self._actions
        if self.sim.caps.active:
            ok = self.sim.action_masks()[np.arange(self.num_envs), a]
            if not ok.all():
                if self.invalid_action == "raise":
                    i = int(np.flatnonzero(~ok)[0])
                    raise ValueError(f"action {a[i]} of env {i} is refused by the frequency caps;"
                                     " use action_masks() (e.g. MaskablePPO)")
                a = np.where(ok, a, self.sim.none_index)
        out = self.sim.step(a, self._rng)
        self.last_step = out
        terminated = out["terminated"]
        truncated = (self.sim.t >= self.horizon) & ~terminated
        dones = terminated | truncated
        obs = self.sim.observation()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        done_rows = np.flatnonzero(dones)
        if len(done_rows):
            for i in done_rows:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
            src = self._rng.integers(len(self.shop.starts), size=len(done_rows))
            self.sim.replace(done_rows, self.shop.starts, src)
            obs[done_rows] = self.sim.observation(done_rows)
        key = "expected_reward" if self.reward_kind == "expected" else "reward"
        return obs, out[key].astype(np.float32), dones, infos


def make_shop_env(predictor: str, data: str, horizon: int = 26, start_users: str = "test",
                  coupon_gap: int = 0, max_contacts: int = 0, contact_window: int = 4,
                  device: str = "cpu", invalid_action: str = "raise",
                  churn: str = "implicit") -> ShopEnv:
    """Entry point of ``gymnasium.make("nudgegym/Shop-v0", predictor=RUN, data=DIR)``."""
    shop = load_learned_shop(predictor, data, horizon=horizon, start_users=start_users,
                             caps=CapConfig(coupon_gap, max_contacts, contact_window),
                             device=device, churn=churn)
    return ShopEnv(shop, horizon=horizon, invalid_action=invalid_action)
