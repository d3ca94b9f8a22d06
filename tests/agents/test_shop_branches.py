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


def test_safe_branch_config_names_bad_values() -> None:
    from agents.shop_branches import ShopBranchConfig, shop_branch_config
    from predictors.errors import ConfigError

    assert not ShopBranchConfig().active and ShopBranchConfig(horizon=4).active
    with pytest.raises(ConfigError, match="`horizon` must be an integer >= 0"):
        ShopBranchConfig(horizon=-1)
    with pytest.raises(ConfigError, match="`support` must be one of"):
        ShopBranchConfig(support="always")
    with pytest.raises(ConfigError, match="`support_ratio`"):
        ShopBranchConfig(support_ratio=0.0)
    with pytest.raises(ConfigError, match="`support_gap` must be > 0"):
        ShopBranchConfig(support_gap=0)
    with pytest.raises(ConfigError, match="`support_policy`"):
        ShopBranchConfig(support_policy="")
    with pytest.raises(ConfigError, match=r"warm_start.shop. keys \['horizn'\] are unknown"):
        shop_branch_config({"horizn": 4})
    with pytest.raises(ConfigError, match="warm_start.shop. must be a mapping"):
        shop_branch_config([4])
    assert shop_branch_config({"horizon": 3}).horizon == 3
    with pytest.raises(ConfigError, match="`warm_start.shop.support_gap` must be > 0"):
        shop_branch_config({"support_gap": -1})


def test_short_horizon_keeps_the_level_and_counts_early_differences(branches) -> None:
    """``horizon``: the follow-up action keeps its full return; every other action differs
    from it by the first ``horizon`` periods' difference only; a horizon past the episode's
    end is the plain rollout."""
    from agents.shop_branches import ShopBranchConfig, ShopBranches

    src, rule = branches
    states = _states(src, rule, n=64, horizon=6, seed=2)
    plain = src.branch_returns(states, rule, seed=5)
    one = ShopBranches(src.simulator, src.starts, ShopBranchConfig(horizon=1))
    g1 = one.branch_returns(states, rule, seed=5)
    first = ShopBranches(src.simulator, src.starts).branch_returns(
        _one_left(states), rule, seed=5)  # the first period alone: the same first draws
    own = np.asarray(rule.act(src.observe(states), np.random.default_rng(0)))
    rows = np.arange(len(own))
    np.testing.assert_allclose(g1[rows, own], plain[rows, own])
    np.testing.assert_allclose(g1 - g1[rows, own][:, None],
                               first - first[rows, own][:, None], atol=1e-9)
    assert not np.allclose(g1, plain)  # later differences are dropped
    long = ShopBranches(src.simulator, src.starts, ShopBranchConfig(horizon=6))
    np.testing.assert_allclose(long.branch_returns(states, rule, seed=5), plain)
    with pytest.raises(ValueError, match="actions=None"):
        one.branch_returns(states, rule, seed=5, actions=[1, 2])


def _one_left(states):
    from agents.shop_branches import ShopBranchStates

    return ShopBranchStates(states.sim, np.ones_like(states.remaining))


def test_support_caps_actions_the_logging_policy_rarely_takes(branches) -> None:
    """``support: logging``: an action the campaign rarely takes in a state is worth the
    follow-up action's return less the gap there; supported actions keep their measured
    return."""
    from agents.baselines import make_rule
    from agents.shop_branches import ShopBranchConfig, ShopBranches

    src, rule = branches
    states = _states(src, rule, n=64, horizon=5, seed=3)
    safe = ShopBranches(src.simulator, src.starts,
                        ShopBranchConfig(support="logging", support_gap=1.5))
    plain = src.branch_returns(states, rule, seed=4)
    g = safe.branch_returns(states, rule, seed=4)
    obs = src.observe(states)
    own = np.asarray(rule.act(obs, np.random.default_rng(0)))
    rows = np.arange(len(own))
    camp = make_rule("campaign", src.simulator.spec, src.simulator.observation_names)
    p = camp.action_probabilities(obs)
    on = p >= 0.3 * p.max(axis=1, keepdims=True)
    on[rows, own] = True
    assert (~on).any() and on.sum(axis=1).min() >= 1
    np.testing.assert_array_equal(g[on], plain[on])
    np.testing.assert_allclose(g[~on], np.broadcast_to(plain[rows, own][:, None] - 1.5,
                                                       g.shape)[~on])
    with pytest.raises(Exception, match="support_policy"):
        ShopBranches(src.simulator, src.starts,
                     ShopBranchConfig(support="logging", support_policy="rule:nope"))


def test_train_policy_takes_safe_shop_branches(tiny_synthetic_run, tmp_path, capsys) -> None:
    """``warm_start.shop`` reaches the learned shop's branches; it needs ``method: rollout``
    and is refused in the true world, each with a named error."""
    import json

    from agents.cli import run_main

    data, pred = tiny_synthetic_run
    tiny = ["--timesteps", "256", "--n-envs", "32", "--eval-users", "20", "--device", "cpu",
            "--no-progress", "--predictor", str(pred), "--data", str(data),
            "--warm-start", "rule:email_capped"]
    cfg = tmp_path / "safe.yaml"
    cfg.write_text("warm_start:\n  method: rollout\n  shop:\n    horizon: 2\n"
                   "    support: logging\n"
                   "  rollout:\n    n_states: 96\n    iterations: 1\n    epochs: 2\n")
    out = tmp_path / "safe"
    assert run_main(["train-policy", "--env", "learned", "--algo", "dqn", "--config", str(cfg),
                     "--out", str(out), *tiny]) == 0
    ws = json.loads((out / "metrics.json").read_text())["warm_start"]
    assert ws["method"] == "rollout" and len(ws["iterations"]) == 1
    assert ws["support_policy"] == "rule:campaign"  # `auto`: the shop's own logging rule
    assert "horizon: 2" in (out / "hyperparams.yaml").read_text()
    capsys.readouterr()
    assert run_main(["train-policy", "--env", "world", "--algo", "dqn", "--config", str(cfg),
                     "--out", str(tmp_path / "w"), *tiny]) != 0
    assert "applies to the learned shop only" in capsys.readouterr().err
    cfg.write_text(cfg.read_text().replace("method: rollout", "method: fqe"))
    assert run_main(["train-policy", "--env", "learned", "--algo", "dqn", "--config", str(cfg),
                     "--out", str(tmp_path / "f"), *tiny]) != 0
    assert "`warm_start.shop` needs `warm_start.method: rollout`" in capsys.readouterr().err
    cfg.write_text(cfg.read_text().replace("horizon: 2", "horizon: -2"))
    assert run_main(["train-policy", "--env", "learned", "--algo", "dqn", "--config", str(cfg),
                     "--out", str(tmp_path / "g"), *tiny]) != 0
    assert "`warm_start.shop.horizon` must be an integer >= 0" in capsys.readouterr().err
