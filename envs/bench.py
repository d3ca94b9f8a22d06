"""Throughput of the learned shop: batched VecEnv vs the naive path vs the bare forward pass."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from envs.shop_env import LearnedShop, ShopEnv, ShopVecEnv


def _rate(step: Callable[[], None], n_users: int, min_seconds: float, max_steps: int) -> float:
    """User-steps per second of ``step`` (each call advances ``n_users``), time-boxed."""
    step()  # warm-up
    done, t0 = 0, time.perf_counter()
    while done < max_steps and (time.perf_counter() - t0 < min_seconds or done < 2):
        step()
        done += 1
    return n_users * done / (time.perf_counter() - t0)


def bench_env(shop: LearnedShop, n_envs: int, *, naive: bool = True, min_seconds: float = 1.0,
              max_steps: int = 200, seed: int = 0) -> dict[str, float]:
    """Measure one batch size side by side.

    Returns:
        ``batched`` and ``naive`` (one :class:`ShopEnv` per user in SB3's DummyVecEnv) user-steps
        per second, ``forward`` rows per second of the predictor's bare readout + step at the
        same batch size (the floor of any simulator), and ``speedup`` = batched / naive.
    """
    rng = np.random.default_rng(seed)
    n_actions = shop.simulator.n_actions
    venv = ShopVecEnv(shop, n_envs=n_envs, seed=seed, invalid_action="noop")
    venv.reset()

    def batched() -> None:
        venv.step(rng.integers(n_actions, size=n_envs))

    out = {"n_envs": float(n_envs),
           "batched": _rate(batched, n_envs, min_seconds, max_steps)}

    sim = venv.sim
    pred = sim.predictor
    raw = np.zeros((n_envs, 7), np.float32)
    acts = np.zeros(n_envs, np.int64)

    ensemble = getattr(pred, "n_members", 1) > 1

    def forward() -> None:
        if ensemble:  # as the simulator calls it: the members' spread only for a penalty
            pred.predict_from_state(sim.state, rng, with_spread=sim.penalty > 0)
        else:
            pred.predict_from_state(sim.state)
        sim.state = pred.step(sim.state, raw, acts)

    out["forward"] = _rate(forward, n_envs, min_seconds, max_steps)
    if naive:
        dv = DummyVecEnv([(lambda: ShopEnv(shop, invalid_action="noop"))] * n_envs)
        dv.seed(seed)
        dv.reset()

        def naive_step() -> None:
            dv.step(rng.integers(n_actions, size=n_envs))

        out["naive"] = _rate(naive_step, n_envs, min_seconds, max(2, max_steps // 50))
        out["speedup"] = out["batched"] / out["naive"]
    return out
