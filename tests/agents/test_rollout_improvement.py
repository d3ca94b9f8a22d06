"""Rollout policy improvement: common-random-number branches, their targets, the warm starts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.cli import run_main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--timesteps", "256", "--n-envs", "32", "--eval-users", "20", "--device", "cpu",
        "--no-progress"]


def _setup(n: int = 40, world: str = "default"):
    from agents.baselines import make_rule
    from predictors import (
        World,
        default_catalog,
        load_world,
        observation_names,
        sample_start_states,
    )

    w = World(load_world(world))
    starts = sample_start_states(w, n, seed=3, observed_periods=4)
    rule = make_rule("email_capped", default_catalog(), observation_names())
    return w, starts, rule


def test_branches_share_random_numbers_and_are_reproducible() -> None:
    from agents.rollout_improvement import branch_returns, sample_states

    world, starts, rule = _setup()
    states = sample_states(world, starts, rule, 6, 50, np.random.default_rng(0))
    assert states.remaining.min() >= 1 and states.remaining.max() <= 6
    for reward in ("sampled", "expected"):
        g = branch_returns(world, states, rule, seed=5, reward=reward, actions=[1, 1, 3])
        assert np.array_equal(g[:, 0], g[:, 1])  # same action, same random numbers
        assert not np.array_equal(g[:, 0], g[:, 2])
        again = branch_returns(world, states, rule, seed=5, reward=reward, actions=[1, 1, 3])
        assert np.array_equal(g, again)
        other = branch_returns(world, states, rule, seed=6, reward=reward, actions=[1])
        assert not np.array_equal(g[:, 0], other[:, 0])
    # sampled branches scatter much more around the expected ones than two actions' CRN gap
    full = branch_returns(world, states, rule, seed=5, reward="expected")
    assert full.shape == (50, world.n_actions)


def test_branch_returns_equal_a_brute_force_rollout() -> None:
    """Each branch is "a, then the rule" stepped by the predictors' own rollout code, with the
    same seed, summed over each state's remaining periods."""
    from agents.rollout_improvement import branch_returns, sample_states
    from predictors.synthetic.rollout import policy_rewards

    world, starts, rule = _setup()
    states = sample_states(world, starts, rule, 5, 30, np.random.default_rng(1))
    got = branch_returns(world, states, rule, seed=9, reward="sampled")
    for a in range(world.n_actions):
        prng = np.random.default_rng([9, 1])

        def policy(obs, state, t, a=a, prng=prng):
            if t == 0:
                return np.full(len(obs), a, np.int64)
            return np.asarray(rule.act(obs, prng), np.int64)

        r = policy_rewards(world, policy, states.users, int(states.remaining.max()),
                           np.random.default_rng([9, 0]), oracle=True)
        keep = np.arange(r.shape[1])[None, :] < states.remaining[:, None]
        np.testing.assert_allclose(got[:, a], (r * keep).sum(axis=1))
    # one period left: the expected branch return is the exact one-period expectation
    states.remaining[:] = 1
    one = branch_returns(world, states, rule, seed=0, reward="expected")
    np.testing.assert_allclose(one, world.expected_reward_table(states.users.state))


def _full_batch_states(world, starts, policy, horizon, n, rng, static):
    """sample_states as a plain loop that steps every sampled user to the last period."""
    from agents.rollout_improvement import BranchStates, _observe

    src = rng.integers(starts.n, size=n)
    t_stop = rng.integers(horizon, size=n)
    users, snap = starts.subset(src), starts.subset(src)
    for t in range(int(t_stop.max()) + 1):
        rows = np.flatnonzero(t_stop == t)
        snap.put(rows, users.subset(rows))
        if t == t_stop.max():
            break
        users.advance(world, policy.act(_observe(users, static, src), rng), rng)
    return BranchStates(snap, src, horizon - t_stop)


def _full_batch_returns(world, states, policy, seed, reward, static):
    """branch_returns as a plain loop that steps every state to the longest episode's end."""
    from agents.rollout_improvement import _observe

    out = np.zeros((states.users.n, world.n_actions))
    for a in range(world.n_actions):
        users = states.users.copy()
        wrng, prng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
        for k in range(int(states.remaining.max())):
            action = (np.full(users.n, a) if k == 0
                      else policy.act(_observe(users, static, states.src), prng))
            exp = world.expected_outcomes(users.state, action).expected_reward
            sampled = users.advance(world, action, wrng)["reward"]
            r = sampled if reward == "sampled" else exp
            out[:, a] += np.where(k < states.remaining, r, 0.0)
    return out


@pytest.mark.parametrize("policy_kind", ["rule", "random"])
def test_shrinking_batches_give_the_full_batch_results_exactly(policy_kind: str) -> None:
    """Finished users leave the batch, yet states and branch returns are bit-identical to
    stepping every user to the end (stochastic follow-up policy and static features too)."""
    from agents.policy import UniformRandomPolicy
    from agents.rollout_improvement import branch_returns, sample_states

    world, starts, rule = _setup(n=60)
    policy = rule if policy_kind == "rule" else UniformRandomPolicy(world.n_actions)
    static = np.random.default_rng(4).normal(size=(starts.n, 3))
    got = sample_states(world, starts, policy, 9, 400, np.random.default_rng(2), static)
    ref = _full_batch_states(world, starts, policy, 9, 400, np.random.default_rng(2), static)
    assert np.array_equal(got.src, ref.src) and np.array_equal(got.remaining, ref.remaining)
    for name, v in ref.users.state.to_columns().items():
        assert np.array_equal(getattr(got.users.state, name), v), name
    for name, v in ref.users.history.arrays.items():
        assert np.array_equal(got.users.history.arrays[name], v), name
    assert len(np.unique(got.remaining)) > 5  # episodes of many lengths: batches shrank
    for reward in ("sampled", "expected"):
        g = branch_returns(world, got, policy, seed=8, reward=reward, static=static)
        assert np.array_equal(g, _full_batch_returns(world, ref, policy, 8, reward, static))


def test_fitted_q_is_greedy_on_its_targets() -> None:
    """On the null world (one action best for everyone) the improved policy is the targets'
    argmax in most training states, and the metrics say how it differs from the rule."""
    from agents.rollout_improvement import RolloutConfig, improve_by_rollouts
    from agents.warm_start_rollout import improved_teacher  # noqa: F401 (importable)

    world, starts, rule = _setup(world="null")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(37, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, world.n_actions))
    cfg = RolloutConfig(n_states=256, iterations=2, epochs=40, batch_size=64,
                        learning_rate=3e-3, advantage_weight=4.0, switch_margin=0.0, seed=0)
    improved, info = improve_by_rollouts(net, world, starts, rule, 4, cfg, reward_scale=0.1)
    first, second = info["iterations"]
    assert first["agreement_train"] > 0.8 and first["agreement"] > 0.8
    assert first["changed"] > 0.5  # email every 2 periods is not the best
    assert first["greedy_gain"] > 0.5  # measured gain of the improved policy's actions
    # the second iteration follows the improved policy: little left to change (near-ties of
    # the two coupons aside)
    assert second["greedy_changed"] < 0.3 and abs(second["greedy_gain"]) < 0.1
    obs = starts.history.observation()
    assert np.array_equal(improved.act(obs, np.random.default_rng(0)),
                          improved.q_values(obs).argmax(axis=1))
    # a switch margin larger than any measured gap keeps the rule
    fresh = torch.nn.Sequential(torch.nn.Linear(37, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, world.n_actions))
    kept, info = improve_by_rollouts(fresh, world, starts, rule, 4,
                                     replace(cfg, iterations=1, switch_margin=100.0),
                                     reward_scale=0.1)
    assert info["iterations"][0]["agreement"] > 0.8
    assert info["iterations"][0]["greedy_changed"] < 0.4  # 0.95 without the margin


def test_bagged_fit_averages_members_and_distils_into_the_net() -> None:
    """``ensemble`` K: the improved policy is greedy in the mean Q of K bootstrap fits, and
    the given network is finally fitted to that mean, so it acts like it."""
    from agents.rollout_improvement import MeanQ, RolloutConfig, improve_by_rollouts

    world, starts, rule = _setup(world="null")
    gen = torch.Generator().manual_seed(0)

    def fresh() -> torch.nn.Module:
        net = torch.nn.Sequential(torch.nn.Linear(37, 32), torch.nn.ReLU(),
                                  torch.nn.Linear(32, world.n_actions))
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.1, generator=gen)
        return net

    cfg = RolloutConfig(n_states=256, iterations=2, epochs=40, batch_size=64,
                        learning_rate=3e-3, advantage_weight=4.0, switch_margin=0.0, seed=0,
                        ensemble=3)
    net = fresh()
    improved, info = improve_by_rollouts(net, world, starts, rule, 4, cfg, reward_scale=0.1)
    assert isinstance(improved.q_net, MeanQ) and len(improved.q_net.nets) == 3
    obs = torch.as_tensor(starts.history.observation().astype(np.float32))
    with torch.no_grad():
        each = torch.stack([m(obs) for m in improved.q_net.nets])
        distilled = net(obs).argmax(dim=1).numpy()
    # the members differ (own resamples, own weights); the policy is their mean's argmax
    assert not torch.allclose(each[0], each[1])
    np.testing.assert_allclose(improved.q_values(obs.numpy()), each.mean(dim=0).numpy(),
                               rtol=1e-5, atol=1e-5)
    assert info["iterations"][0]["greedy_gain"] > 0.5
    assert (distilled == improved.act(obs.numpy(), np.random.default_rng(0))).mean() > 0.9
    # one member: the network itself is the policy (no distillation), as before
    single = fresh()
    one, _ = improve_by_rollouts(single, world, starts, rule, 4,
                                 replace(cfg, ensemble=1, iterations=1), reward_scale=0.1)
    assert not isinstance(one.q_net, MeanQ)
    with torch.no_grad():
        np.testing.assert_allclose(one.q_values(obs.numpy()), single(obs).numpy(), rtol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_states": 0}, "n_states"), ({"iterations": 1.5}, "iterations"),
    ({"reward": "mean"}, "reward"), ({"learning_rate": 0}, "learning_rate"),
    ({"advantage_weight": -1}, "advantage_weight"), ({"holdout": 1.0}, "holdout"),
    ({"switch_margin": -0.1}, "switch_margin"), ({"ensemble": 0}, "ensemble")])
def test_rollout_config_errors(kwargs, match) -> None:
    from agents.rollout_improvement import RolloutConfig

    with pytest.raises(ValueError, match=match):
        RolloutConfig(**kwargs)


def test_warm_start_method_is_checked(tmp_path: Path) -> None:
    from agents.train import load_hyperparams
    from predictors import ConfigError

    for text, match in [("warm_start:\n  method: magic\n", "warm_start.method"),
                        ("warm_start:\n  method: clone\n", "warm_start.method"),
                        ("warm_start:\n  rollout:\n    n_state: 3\n", "n_state"),
                        ("warm_start:\n  rollout:\n    n_states: 0\n", "n_states"),
                        ("warm_start:\n  rollout: 3\n", "mapping")]:
        f = tmp_path / "c.yaml"
        f.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_hyperparams("dqn", f)
    f.write_text("warm_start:\n  method: fqe\n")
    with pytest.raises(ConfigError, match="warm_start.method"):
        load_hyperparams("ppo", f)
    f.write_text("warm_start:\n  rollout_clone:\n    epochs: 5\n")
    with pytest.raises(ConfigError, match="rollout_clone.*PPO"):
        load_hyperparams("dqn", f)
    for text, match in [("label_smooth: 0.0", "label_smooth"),
                        ("label_smoothing: 1.5", "label_smoothing"),
                        ("copy_temperature: -1", "copy_temperature")]:
        f.write_text(f"warm_start:\n  rollout_clone:\n    {text}\n")
        with pytest.raises(ConfigError, match=match):
            load_hyperparams("ppo", f)
    from agents.warm_start_rollout import clone_config

    assert clone_config(None, seed=3).label_smoothing == 0.0  # the improved policy, exactly
    assert clone_config(None, seed=3).copy_temperature > 0
    assert load_hyperparams("dqn")["warm_start"]["method"] == "auto"
    assert load_hyperparams("ppo")["warm_start"]["method"] == "auto"


def test_train_policy_rollout_warm_starts(tiny_synthetic_run, tmp_path: Path) -> None:
    """DQN and PPO warm-start from the rollout-improved rule in the true world; in the learned
    shop auto is fqe and an explicit rollout branches the shop's users."""
    data, pred = tiny_synthetic_run
    cfg = tmp_path / "small.yaml"
    cfg.write_text("warm_start:\n  method: auto\n"
                   "  rollout:\n    n_states: 128\n    iterations: 1\n    epochs: 2\n")
    for algo in ("dqn", "ppo"):
        out = tmp_path / algo
        assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data),
                         "--env", "world", "--algo", algo, "--warm-start", "rule:email_capped",
                         "--config", str(cfg), "--out", str(out), *TINY]) == 0
        m = json.loads((out / "metrics.json").read_text())
        ws = m["warm_start"]
        assert ws["method"] == "rollout"
        its = ws["iterations"] if algo == "dqn" else ws["rollout"]["iterations"]
        assert len(its) == 1 and 0 <= its[0]["changed"] <= 1
        if algo == "ppo":  # the teacher's Q-network is copied: its greedy action everywhere
            assert ws["actor"] == "copied" and ws["accuracy"] == 1.0
    # auto = fqe in the learned shop; an explicit rollout branches the learned shop
    out = tmp_path / "learned"
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data),
                     "--env", "learned", "--algo", "dqn", "--warm-start", "rule:email_capped",
                     "--config", str(cfg), "--out", str(out), *TINY]) == 0
    assert "transitions" in json.loads((out / "metrics.json").read_text())["warm_start"]
    cfg.write_text(cfg.read_text().replace("method: auto", "method: rollout"))
    out = tmp_path / "x"
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data),
                     "--env", "learned", "--algo", "dqn", "--warm-start", "rule:email_capped",
                     "--config", str(cfg), "--out", str(out), *TINY]) == 0
    ws = json.loads((out / "metrics.json").read_text())["warm_start"]
    assert ws["method"] == "rollout" and len(ws["iterations"]) == 1
