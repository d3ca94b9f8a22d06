"""Common-random-number branch rollouts in the learned shop."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def branches(tiny_synthetic_run):
    from agents.baselines import make_rule
    from agents.shop_branches import ShopBranches
    from envs.shop_env import load_learned_shop

    data, pred = tiny_synthetic_run
    shop = load_learned_shop(pred, data)
    rule = make_rule("email_capped", shop.spec.actions, shop.observation_names)
    return ShopBranches(shop.simulator, shop.starts), rule


def _states(src, rule, n=64, horizon=5, seed=0):
    return src.sample_states(rule, horizon, n, np.random.default_rng(seed))


def test_branches_are_common_random_numbers_and_reproducible(branches) -> None:
    src, rule = branches
    states = _states(src, rule)
    assert states.sim.n == 64 and ((states.remaining >= 1) & (states.remaining <= 5)).all()
    assert (states.sim.t == 5 - states.remaining).all()
    for reward in ("sampled", "expected"):
        g = src.branch_returns(states, rule, seed=7, reward=reward, actions=[1, 1, 2])
        assert g.shape == (64, 3)
        np.testing.assert_array_equal(g[:, 0], g[:, 1])  # same action, same random numbers
        again = src.branch_returns(states, rule, seed=7, reward=reward, actions=[1, 1, 2])
        np.testing.assert_array_equal(g, again)
        assert not np.array_equal(g[:, 0], g[:, 2])  # the action matters
    other = src.branch_returns(states, rule, seed=8, reward="sampled", actions=[1])
    same = src.branch_returns(states, rule, seed=7, reward="sampled", actions=[1])
    assert not np.array_equal(other, same)  # another seed, other draws
    # branching does not move the sampled users
    np.testing.assert_array_equal(
        src.branch_returns(states, rule, seed=7, reward="sampled", actions=[1]), same)


def test_one_period_left_is_the_shops_expected_reward(branches) -> None:
    """With one period left the expected branch return of ``a`` is the shop's own expected
    reward of ``a`` from that state; the sampled one averages to it over seeds."""
    from agents.shop_branches import _as_starts

    src, rule = branches
    states = _states(src, rule, n=48, horizon=3, seed=1)
    states.remaining[:] = 1
    g = src.branch_returns(states, rule, seed=3, reward="expected")
    for a in range(src.n_actions):
        sim = states.sim.clone()
        sim.load(_as_starts(states.sim), np.arange(states.sim.n))
        sim.t = states.sim.t.copy()
        out = sim.step(np.full(sim.n, a), np.random.default_rng(99))
        np.testing.assert_allclose(g[:, a], out["expected_reward"], rtol=1e-10, atol=1e-10)
    sampled = np.mean([src.branch_returns(states, rule, seed=s, reward="sampled")
                       for s in range(300)], axis=0)
    assert abs(sampled.mean() - g.mean()) < 0.25 * max(1.0, abs(g).mean())


def test_improve_by_branches_runs_in_the_shop(branches) -> None:
    import torch

    from agents.rollout_improvement import RolloutConfig, improve_by_branches

    src, rule = branches
    d = len(src.simulator.observation_names)
    net = torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, src.n_actions))
    cfg = RolloutConfig(n_states=96, iterations=2, epochs=3, batch_size=32)
    policy, info = improve_by_branches(net, src, rule, 4, cfg)
    its = info["iterations"]
    assert len(its) == 2 and all(0 <= it["agreement"] <= 1 for it in its)
    assert sum(its[0]["actions"]) == 96
    obs = src.observe(_states(src, rule, n=10))
    assert policy.act(obs, np.random.default_rng(0)).shape == (10,)
