"""train-policy: smoke runs per algorithm via the CLI, resume, the SB3 wrapper, the fast paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.cli import run_main
from agents.sb3_policy import SB3Policy, load_sb3_policy

TINY = ["--timesteps", "512", "--n-envs", "32", "--eval-users", "20", "--device", "cpu",
        "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("algo", ["ppo", "dqn", "maskable-ppo"])
def test_train_policy_cli_smoke(algo: str, tiny_run, tmp_path: Path) -> None:
    data, pred = tiny_run
    out = tmp_path / algo
    cfg = tmp_path / "hp.yaml"
    cfg.write_text("n_steps: 8\nbatch_size: 64\n" if "ppo" in algo
                   else "learning_starts: 64\nbatch_size: 64\n")
    args = ["train-policy", "--predictor", str(pred), "--data", str(data), "--algo", algo,
            "--out", str(out), "--config", str(cfg), *TINY]
    if algo == "maskable-ppo":
        args += ["--coupon-gap", "3"]
    assert run_main(args) == 0
    for name in ("config.json", "hyperparams.yaml", "model.zip", "metrics.json",
                 "learning_curve.png", "policy.json", "checkpoint.zip"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["timesteps"] >= 512 and m["algo"] == algo
    assert len(m["eval_history"]) >= 2 and np.isfinite(m["final_eval"]["mean_return"])
    assert "batch_size: 64" in (out / "hyperparams.yaml").read_text()


def test_bad_hyperparameter_is_named(tiny_run, tmp_path: Path, capsys) -> None:
    data, pred = tiny_run
    cfg = tmp_path / "hp.yaml"
    cfg.write_text("n_stepz: 8\n")
    rc = run_main(["train-policy", "--predictor", str(pred), "--data", str(data), "--out",
                   str(tmp_path / "r"), "--config", str(cfg), *TINY])
    assert rc == 1 and "n_stepz" in capsys.readouterr().err


def test_resume_continues_the_step_count(tiny_run, tmp_path: Path) -> None:
    data, pred = tiny_run
    out = tmp_path / "run"
    cfg = tmp_path / "hp.yaml"
    cfg.write_text("n_steps: 8\nbatch_size: 64\n")
    base = ["train-policy", "--predictor", str(pred), "--data", str(data), "--out", str(out),
            "--config", str(cfg), "--n-envs", "32", "--eval-users", "10", "--device", "cpu",
            "--no-progress"]
    assert run_main([*base, "--timesteps", "256"]) == 0
    first = json.loads((out / "checkpoint.json").read_text())
    assert first["timesteps"] == 256
    assert run_main([*base, "--timesteps", "768", "--resume"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["timesteps"] == 768
    # the evaluations of the first part are kept, and later ones follow them
    steps = [h["timesteps"] for h in m["eval_history"]]
    assert steps[: len(first["history"])] == [h["timesteps"] for h in first["history"]]
    assert steps == sorted(steps) and steps[-1] == 768


def test_resume_without_checkpoint_fails(tiny_run, tmp_path: Path, capsys) -> None:
    data, pred = tiny_run
    rc = run_main(["train-policy", "--predictor", str(pred), "--data", str(data), "--out",
                   str(tmp_path / "empty"), "--resume", *TINY])
    assert rc == 1 and "nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_sb3_policy_equals_model_predict(algo: str, tiny_run, tmp_path: Path) -> None:
    data, pred = tiny_run
    out = tmp_path / algo
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data), "--algo",
                     algo, "--out", str(out), *TINY]) == 0
    policy = load_sb3_policy(out, deterministic=True)
    obs = np.random.default_rng(0).random((300, len(policy.observation_names)),
                                          dtype=np.float32) * 2
    expected, _ = policy.model.predict(obs, deterministic=True)
    got = policy.act(obs, np.random.default_rng(1))
    np.testing.assert_array_equal(got, expected)
    probs = policy.action_probabilities(obs)
    np.testing.assert_array_equal(probs.argmax(1), expected)
    # masked: the best allowed action, never a masked one
    mask = np.ones_like(probs, dtype=bool)
    mask[np.arange(len(obs)), expected] = False
    masked = policy.act(obs, np.random.default_rng(1), mask)
    assert mask[np.arange(len(obs)), masked].all()


def test_stochastic_sb3_policy_is_the_distribution(tiny_run, tmp_path: Path) -> None:
    data, pred = tiny_run
    out = tmp_path / "ppo"
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data),
                     "--out", str(out), *TINY]) == 0
    policy = load_sb3_policy(out, deterministic=False)
    obs = np.zeros((4, len(policy.observation_names)), np.float32)
    probs = policy.action_probabilities(obs)
    t = policy.model.policy.obs_to_tensor(obs)[0]
    with torch.no_grad():
        ref = policy.model.policy.get_distribution(t).distribution.probs.numpy()
    np.testing.assert_allclose(probs, ref, rtol=1e-5)
    assert isinstance(policy, SB3Policy)


def test_batched_bootstrap_matches_sb3_per_env(tiny_run) -> None:
    """The wrapper's batched bootstrap adds exactly gamma * V(terminal obs) per truncated env."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from agents.batched_sb3 import TrainingRewardWrapper
    from envs.shop_env import ShopVecEnv, load_learned_shop

    data, pred = tiny_run
    shop = load_learned_shop(pred, data, start_users="all")
    raw = ShopVecEnv(shop, n_envs=16, horizon=2, seed=0, invalid_action="noop")
    env = TrainingRewardWrapper(VecMonitor(raw), reward_scale=0.5)
    model = PPO("MlpPolicy", env, n_steps=4, batch_size=32, seed=0, device="cpu")
    env.attach(model.policy, 0.9)
    env.reset()
    actions = np.zeros(16, np.int64)
    env.step(actions)
    obs, rew, dones, infos = env.step(actions)
    trunc = [i for i in range(16) if infos[i].get("bootstrapped")]
    assert trunc, "horizon 2 truncates surviving users at the second step"
    terminal = np.stack([infos[i]["terminal_observation"] for i in trunc])
    with torch.no_grad():
        v = model.policy.predict_values(model.policy.obs_to_tensor(terminal)[0]).numpy()[:, 0]
    raw_reward = raw.last_step["reward"][trunc]
    np.testing.assert_allclose(rew[trunc], 0.5 * raw_reward + 0.9 * v, rtol=1e-4, atol=1e-4)
    assert not any(infos[i]["TimeLimit.truncated"] for i in trunc)


def test_vectorised_dqn_explores_per_env_with_its_own_rng(tiny_run) -> None:
    from agents.batched_sb3 import VectorisedDQN
    from envs.shop_env import ShopVecEnv, load_learned_shop

    data, pred = tiny_run
    shop = load_learned_shop(pred, data, start_users="all")
    env = ShopVecEnv(shop, n_envs=500, seed=0, invalid_action="noop")
    model = VectorisedDQN("MlpPolicy", env, seed=3, device="cpu", learning_starts=0)
    obs = env.reset()
    model.exploration_rate = 0.5
    greedy, _ = model.predict(obs, deterministic=True)
    a1, _ = model.predict(obs)
    share = (a1 != greedy).mean()
    assert 0.3 < share < 0.5  # eps * (1 - 1/n_actions) = 0.4 differ, per env
    model2 = VectorisedDQN("MlpPolicy", env, seed=3, device="cpu", learning_starts=0)
    model2.policy.load_state_dict(model.policy.state_dict())
    model2.exploration_rate = 0.5
    np.testing.assert_array_equal(model2.predict(obs)[0], a1)  # seeded, no global RNG


def test_train_in_the_true_world(tiny_synthetic_run, tmp_path: Path) -> None:
    """--env world trains on the dataset's true world and evaluates there (same obs layout)."""
    data, pred = tiny_synthetic_run
    out = tmp_path / "world"
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data), "--env",
                     "world", "--out", str(out), *TINY]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["eval_env"] == "world" and m["timesteps"] >= 512
    policy = load_sb3_policy(out)
    meta = json.loads((out / "policy.json").read_text())
    assert policy.model.observation_space.shape == (len(meta["observation_names"]),)


def test_world_vec_env_restarts_finished_users(tiny_synthetic_run) -> None:
    import pandas as pd

    from envs.world_vec_env import WorldVecEnv, world_from_dataset, world_start_states
    from predictors import read_start_states

    data, _ = tiny_synthetic_run
    n = read_start_states(data, "end").n
    ids = pd.read_parquet(Path(data) / "truth" / "users.parquet")["user_id"].to_numpy()[:50]
    env = WorldVecEnv(world_from_dataset(data), world_start_states(data, ids), n_envs=40,
                      horizon=3, seed=0)
    obs = env.reset()
    assert obs.shape == (40, env.observation_space.shape[0]) and n >= 50
    ended = np.zeros(40, bool)
    for _ in range(3):
        obs, rew, dones, infos = env.step(np.zeros(40, np.int64))
        ended |= dones
        assert all("terminal_observation" in infos[i] for i in np.flatnonzero(dones))
        assert (env.t[dones] == 0).all()  # restarted at once
    assert ended.all()  # every user ends at the horizon or churned before


def test_world_vec_env_expected_reward_is_the_worlds_expectation(tiny_synthetic_run) -> None:
    """``reward="expected"`` pays the exact one-period expectation of the state stepped from;
    the dynamics are those of the sampled-reward env with the same seed."""
    import pandas as pd

    from envs.world_vec_env import WorldVecEnv, world_from_dataset, world_start_states

    data, _ = tiny_synthetic_run
    ids = pd.read_parquet(Path(data) / "truth" / "users.parquet")["user_id"].to_numpy()[:50]
    world, starts = world_from_dataset(data), world_start_states(data, ids)
    envs = {k: WorldVecEnv(world, starts, n_envs=40, horizon=5, seed=3, reward=k)
            for k in ("expected", "sampled")}
    for env in envs.values():
        env.reset()
    act = np.random.default_rng(0).integers(world.n_actions, size=(4, 40))
    for a in act:
        before = envs["expected"].users.state.copy()
        exact = world.expected_outcomes(before, a).expected_reward.astype(np.float32)
        obs_e, rew_e, done_e, _ = envs["expected"].step(a)
        obs_s, rew_s, done_s, _ = envs["sampled"].step(a)
        assert np.array_equal(rew_e, exact)
        assert np.array_equal(obs_e, obs_s) and np.array_equal(done_e, done_s)
    assert not np.array_equal(rew_e, rew_s)


def test_a_warm_start_override_keeps_the_other_warm_start_keys(tmp_path) -> None:
    """`warm_start: {rollout: {n_states: N}}` in --config changes that one option; the rest of
    the warm-start section (and of its rollout options) stays at the defaults."""
    import yaml

    from agents.train import load_hyperparams

    base = load_hyperparams("dqn")["warm_start"]
    f = tmp_path / "small.yaml"
    f.write_text(yaml.safe_dump({"warm_start": {"rollout": {"n_states": 512}},
                                 "learning_rate": 0.001}))
    params = load_hyperparams("dqn", f)
    warm = params["warm_start"]
    assert warm["rollout"]["n_states"] == 512 and params["learning_rate"] == 0.001
    assert {k: v for k, v in warm.items() if k != "rollout"} == \
        {k: v for k, v in base.items() if k != "rollout"}
    assert {k: v for k, v in warm["rollout"].items() if k != "n_states"} == \
        {k: v for k, v in base["rollout"].items() if k != "n_states"}


def test_trained_env_reads_the_run_config(tmp_path) -> None:
    import json

    from agents.loading import trained_env

    run = tmp_path / "run"
    run.mkdir()
    assert trained_env("rule:never") is None and trained_env(str(run)) is None
    (run / "config.json").write_text(json.dumps({"command": "train-policy",
                                                 "options": {"env": "world"}}))
    assert trained_env(str(run)) == "world"
    (run / "config.json").write_text(json.dumps({"command": "room", "options": {"env": "world"}}))
    assert trained_env(str(run)) is None
    (run / "config.json").write_text("{not json")
    assert trained_env(str(run)) is None


def test_keep_best_keeps_the_best_evaluated_policy(tiny_run, tmp_path: Path) -> None:
    """``keep: best``: model.zip is the best-evaluated policy, checkpoint.zip the last one."""
    from agents.train import TrainConfig, _make_envs

    data, pred = tiny_run
    out = tmp_path / "best"
    cfg = tmp_path / "hp.yaml"
    cfg.write_text("n_steps: 8\nbatch_size: 64\nlearning_rate: 0.03\nkeep: best\n")
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data), "--out",
                     str(out), "--config", str(cfg), "--timesteps", "2048", "--n-envs", "32",
                     "--eval-users", "20", "--eval-every", "256", "--device", "cpu",
                     "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    values = [h["mean_return"] for h in m["eval_history"]]
    assert len(values) >= 5 and m["kept"] == "best"
    assert m["final_eval"]["mean_return"] == max(values)
    # the kept policy, evaluated again on the same users and seeds, gives the kept value
    tc = TrainConfig(**{**m["config"], "progress": False})
    evaluate = _make_envs(tc, pred, data, 32)[1]
    again = evaluate(load_sb3_policy(out)).mean()
    assert again == pytest.approx(max(values), abs=1e-9)
    last = evaluate(load_sb3_policy(out, checkpoint="checkpoint.zip")).mean()
    assert last == pytest.approx(values[-1], abs=1e-9)


def test_keep_must_be_last_or_best(tmp_path: Path) -> None:
    from agents.train import load_hyperparams
    from predictors import ConfigError

    for text, where in [("keep: newest\n", "`keep`"), ("warm_start:\n  keep: 3\n",
                                                       "`warm_start.keep`")]:
        f = tmp_path / "hp.yaml"
        f.write_text(text)
        with pytest.raises(ConfigError, match=f"{where}.*'last', 'best'"):
            load_hyperparams("ppo", f)
