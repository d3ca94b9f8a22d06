"""The learned shop: Gymnasium/SB3 conformance, seeding, masks and the batched VecEnv."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from envs.shop_env import ShopEnv, ShopVecEnv, load_learned_shop
from envs.simulator import CapConfig


@pytest.fixture(scope="module")
def shop(tiny_run):
    data, pred = tiny_run
    return load_learned_shop(pred, data, horizon=5, start_users="all")


def test_env_checkers_pass(shop) -> None:
    gym_check_env(ShopEnv(shop, horizon=5), skip_render_check=True)
    sb3_check_env(ShopEnv(shop, horizon=5), warn=False)


def test_observation_names_match_space(shop) -> None:
    env = ShopEnv(shop, horizon=5)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (len(env.observation_names),) == env.observation_space.shape
    assert len(set(env.observation_names)) == len(env.observation_names)
    assert np.isfinite(obs).all()


def _trajectory(env: ShopEnv, seed: int, actions: list[int]) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    out = [tuple(obs)]
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        out.append((tuple(obs), r, term, trunc))
        if term or trunc:
            break
    return out


def test_same_seed_same_trajectory_other_seed_differs(shop) -> None:
    env = ShopEnv(shop, horizon=5)
    acts = [1, 3, 0, 2, 4]
    assert _trajectory(env, 7, acts) == _trajectory(env, 7, acts)
    runs = {str(_trajectory(env, s, acts)) for s in range(6)}
    assert len(runs) > 1


def test_episode_ends_at_horizon(shop) -> None:
    env = ShopEnv(shop, horizon=3)
    env.reset(seed=1)
    for _ in range(3):
        _, _, term, trunc, _ = env.step(0)
        if term:
            return
    assert trunc


def test_coupon_cap_masks_and_refuses(tiny_run) -> None:
    data, pred = tiny_run
    shop = load_learned_shop(pred, data, horizon=6, start_users="all",
                             caps=CapConfig(coupon_gap=3))
    env = ShopEnv(shop, horizon=6)
    coupon = env.action_names.index("coupon_10")
    for seed in range(50):  # find a user who does not churn in the first period
        env.reset(seed=seed)
        env.sim.since_coupon[:] = 100  # no coupon in the user's recent history
        assert env.action_masks()[coupon]
        _, _, term, _, _ = env.step(coupon)
        if not term:
            break
    assert not term
    assert not env.action_masks()[coupon]
    assert not env.action_masks()[env.action_names.index("coupon_20")]
    assert env.action_masks()[env.action_names.index("email")]
    with pytest.raises(ValueError, match="refused by the frequency caps"):
        env.step(coupon)
    noop = ShopEnv(shop, horizon=6, invalid_action="noop")
    noop.reset(seed=0)
    noop.sim.since_coupon[:] = 1
    *_, info = noop.step(coupon)
    assert info["refused"] is True


def test_vec_env_steps_and_restarts(shop) -> None:
    venv = ShopVecEnv(shop, n_envs=64, horizon=4, seed=0)
    obs = venv.reset()
    assert obs.shape == (64, len(shop.observation_names))
    dones_seen = 0
    for _ in range(4):
        obs, rew, dones, infos = venv.step(np.zeros(64, dtype=int))
        dones_seen += int(dones.sum())
        for i in np.flatnonzero(dones):
            assert "terminal_observation" in infos[i]
    assert dones_seen >= 64  # everyone ends within the horizon, then restarts
    assert (venv.sim.t < 4).all()


def test_vec_env_seeded_reproducible(shop) -> None:
    def run(seed: int) -> float:
        venv = ShopVecEnv(shop, n_envs=32, horizon=4, seed=seed)
        venv.reset()
        total = 0.0
        for _ in range(6):
            _, r, _, _ = venv.step(np.full(32, 1))
            total += float(r.sum())
        return total

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_registered_env_makes(tiny_run) -> None:
    import envs  # noqa: F401  (registers the ids)

    data, pred = tiny_run
    env = gym.make("nudgegym/Shop-v0", predictor=str(pred), data=str(data), horizon=4,
                   start_users="all")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_static_features_only_on_request(tiny_run) -> None:
    from predictors import observation_names

    data, pred = tiny_run
    plain = load_learned_shop(pred, data, start_users="all")
    assert plain.observation_names == observation_names()
    with_static = load_learned_shop(pred, data, start_users="all", static_in_obs=True)
    extra = with_static.observation_names[len(plain.observation_names):]
    assert extra and all(n.startswith("static:") for n in extra)
    obs, _ = ShopEnv(with_static).reset(seed=0)
    assert obs.shape == (len(with_static.observation_names),)


def test_churn_modes(tiny_run) -> None:
    data, pred = tiny_run
    for mode in ("implicit", "terminate"):
        shop = load_learned_shop(pred, data, start_users="all", churn=mode)
        sim = shop.simulator.clone()
        sim.load(shop.starts, np.zeros(2000, dtype=int))
        rng = np.random.default_rng(0)
        churned = terminated = 0
        for _ in range(5):
            out = sim.step(np.zeros(2000, dtype=int), rng)
            churned += int(out["churn"].sum())
            terminated += int(out["terminated"].sum())
            assert not (out["terminated"] & ~out["churn"]).any()
        assert churned > 0
        assert terminated == (churned if mode == "terminate" else 0)
    with pytest.raises(ValueError, match="churn"):
        load_learned_shop(pred, data, start_users="all", churn="sometimes")
