"""SyntheticShop-v0 follows the Gymnasium and SB3 contracts and is reproducible."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers the env)
from envs.synthetic_shop import SyntheticShopEnv
from predictors.synthetic import World, sample_start_states


def test_checkers_pass() -> None:
    gym_check_env(SyntheticShopEnv(horizon=5), skip_render_check=True)
    sb3_check_env(SyntheticShopEnv(horizon=5), warn=True)


def test_registered() -> None:
    env = gym.make("nudgegym/SyntheticShop-v0")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def _trajectory(seed: int, actions: list[int]) -> list:
    env = SyntheticShopEnv(horizon=len(actions))
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out += [obs, r, term, trunc, info["revenue"], info["cost"]]
        if term or trunc:
            break
    return out


def test_same_seed_same_trajectory_other_seed_differs() -> None:
    actions = [0, 1, 3, 2, 4, 0, 1, 1, 0, 3] * 2
    a, b, c = _trajectory(3, actions), _trajectory(3, actions), _trajectory(4, actions)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=False))


def test_reward_info_and_truncation() -> None:
    env = SyntheticShopEnv(horizon=3)
    env.reset(seed=1)
    _, r, term, trunc, info = env.step(3)
    assert r == pytest.approx(info["revenue"] - info["cost"])
    assert info["cost"] >= 0.05 and set(info) >= {"revenue", "cost", "purchased", "churned"}
    if not term:
        env.step(0)
        *_, trunc, _ = env.step(0)
        assert trunc


def test_reset_from_given_state() -> None:
    world = World()
    start = sample_start_states(world, 3, seed=0).subset(np.array([1]))
    env = SyntheticShopEnv()
    obs, _ = env.reset(seed=0, options={"state": start})
    np.testing.assert_array_equal(obs, start.history.observation()[0])
    with pytest.raises(ValueError, match="exactly 1 user"):
        env.reset(options={"state": sample_start_states(world, 2, seed=0)})
