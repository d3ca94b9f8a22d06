"""Expected-reward training signal, warm start from a rule, reference tracking, the value bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agents.cli import run_main

TINY = ["--timesteps", "512", "--n-envs", "32", "--eval-users", "20", "--device", "cpu",
        "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _world_env(data: Path, reward: str, seed: int = 0, n: int = 200):
    from envs.world_vec_env import WorldVecEnv, world_from_dataset, world_start_states

    ids = pd.read_parquet(Path(data) / "truth" / "users.parquet")["user_id"].to_numpy()[:n]
    return WorldVecEnv(world_from_dataset(data), world_start_states(data, ids), n_envs=n,
                       horizon=5, seed=seed, reward=reward)


def test_world_expected_reward_is_the_mean_of_the_sampled(tiny_synthetic_run) -> None:
    """Same seed: same dynamics; the expected reward averages the sampled one (per action)."""
    data, _ = tiny_synthetic_run
    envs = {k: _world_env(data, k) for k in ("sampled", "expected")}
    obs = {k: e.reset() for k, e in envs.items()}
    np.testing.assert_array_equal(obs["sampled"], obs["expected"])
    rng = np.random.default_rng(0)
    sampled, expected = [], []
    for _ in range(5):
        a = rng.integers(5, size=200)
        out = {k: e.step(a) for k, e in envs.items()}
        np.testing.assert_array_equal(out["sampled"][0], out["expected"][0])  # same dynamics
        sampled.append(out["sampled"][1])
        expected.append(out["expected"][1])
    s, e = np.concatenate(sampled), np.concatenate(expected)
    assert e.std() < s.std()  # the noise of the draw is gone
    assert abs(s.mean() - e.mean()) < 4 * s.std() / np.sqrt(len(s))
    with pytest.raises(ValueError, match="reward"):
        _world_env(data, "exact")


def test_learned_shop_expected_reward(tiny_synthetic_run) -> None:
    from envs.shop_env import ShopVecEnv, load_learned_shop

    data, pred = tiny_synthetic_run
    shop = load_learned_shop(pred, data, start_users="all")
    env = ShopVecEnv(shop, n_envs=256, horizon=4, seed=0, reward="expected")
    env.reset()
    a = np.full(256, shop.spec.action_names.index("coupon_10"))
    _, r, _, _ = env.step(a)
    out = env.last_step
    assert np.allclose(r, out["expected_reward"]) and not np.allclose(r, out["reward"])
    assert (r >= -max(x.cost for x in shop.spec.actions) - 1e-6).all()
    # the draw's mean matches the expectation within its noise
    assert abs(out["reward"].mean() - r.mean()) < 4 * out["reward"].std() / 16 + 1e-6


def test_warm_start_clones_the_rule(tiny_synthetic_run) -> None:
    from agents.batched_sb3 import ALGORITHMS
    from agents.tuned_rule import TunedRulePolicy
    from agents.warm_start import WarmStartConfig, warm_start_actor_critic
    from predictors import default_catalog, observation_names

    data, _ = tiny_synthetic_run
    env = _world_env(data, "expected")
    teacher = TunedRulePolicy(default_catalog(), observation_names(), active="push",
                              active_gap=2, lapse=4, lapsed="coupon_10", lapsed_gap=3)
    model = ALGORITHMS["ppo"]("MlpPolicy", env, seed=0, device="cpu", n_steps=8,
                              batch_size=64)
    stats = warm_start_actor_critic(model, env, teacher, WarmStartConfig(n_steps=30,
                                                                         batch_size=512),
                                    reward_scale=0.1)
    assert stats["accuracy"] > 0.9 and stats["transitions"] == 30 * 200
    obs = env.reset()
    greedy = model.predict(obs, deterministic=True)[0]
    assert (greedy == teacher.act(obs, np.random.default_rng(0))).mean() > 0.85
    with torch.no_grad():
        v = model.policy.predict_values(model.policy.obs_to_tensor(obs)[0]).numpy()
    assert v.mean() > 0  # the critic learned the rule's (positive) value


def test_warm_start_copies_a_q_network_teacher(tiny_synthetic_run) -> None:
    """A Q-network teacher with the actor's layers is copied (greedy action everywhere the
    teacher's, near-deterministic at a small temperature); other layers fall back to cloning."""
    from agents.batched_sb3 import ALGORITHMS
    from agents.rollout_improvement import GreedyQPolicy
    from agents.warm_start import WarmStartConfig, warm_start_actor_critic

    data, _ = tiny_synthetic_run
    env = _world_env(data, "expected")
    d, n_act = env.observation_space.shape[0], env.action_space.n
    torch.manual_seed(0)
    cfg = WarmStartConfig(n_steps=10, epochs=2, batch_size=512, copy_temperature=0.01)
    for hidden, kind in [(64, "copied"), (32, "cloned")]:
        q = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, n_act))
        teacher = GreedyQPolicy(q, n_act)
        model = ALGORITHMS["ppo"]("MlpPolicy", env, seed=0, device="cpu", n_steps=8,
                                  batch_size=64, policy_kwargs={
                                      "net_arch": [64, 64], "activation_fn": torch.nn.ReLU})
        stats = warm_start_actor_critic(model, env, teacher, cfg, reward_scale=0.1)
        assert stats["actor"] == kind
        obs = env.reset()
        greedy = model.predict(obs, deterministic=True)[0]
        agree = (greedy == teacher.act(obs, np.random.default_rng(0))).mean()
        if kind == "copied":
            assert stats["accuracy"] == 1.0 and agree == 1.0
            with torch.no_grad():
                dist = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0])
                logits = dist.distribution.logits.numpy()
            want = teacher.q_values(obs) / 0.01
            np.testing.assert_allclose(logits - logits.mean(axis=1, keepdims=True),
                                       want - want.mean(axis=1, keepdims=True),
                                       rtol=1e-3, atol=1e-2)


def test_train_with_reference_and_warm_start(tiny_synthetic_run, tmp_path: Path) -> None:
    data, pred = tiny_synthetic_run
    import yaml

    from agents.train import load_hyperparams

    out = tmp_path / "w"
    fine = load_hyperparams("ppo")["warm_start"]
    small = tmp_path / "small.yaml"  # the default warm start with a small rollout budget
    small.write_text(yaml.safe_dump({"warm_start": {**fine, "rollout": {"n_states": 256,
                                                                        "epochs": 2}}}))
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data), "--env",
                     "world", "--reward", "expected", "--reference", "rule:email_capped",
                     "--warm-start", "rule:email_capped", "--config", str(small),
                     "--out", str(out), *TINY]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["reward"] == "expected" and m["warm_start"]["accuracy"] > 0.5
    used = yaml.safe_load((out / "hyperparams.yaml").read_text())
    rollout_keys = fine["rollout_fine_tune"]  # over the others: the teacher is rollout-improved
    assert fine and all(used[k] == rollout_keys.get(k, v) for k, v in fine.items()
                        if k not in ("method", "rollout", "rollout_clone", "rollout_fine_tune"))
    assert used["learning_rate"] == rollout_keys["learning_rate"] != fine["learning_rate"]
    assert used["warm_start"]["method"] == "rollout"  # auto in the true world
    h = m["eval_history"][-1]
    assert h["vs_reference_low"] <= h["vs_reference"] <= h["vs_reference_high"]
    assert m["reference"]["mean_return"] == pytest.approx(h["mean_return"] - h["vs_reference"])


def test_warm_start_overrides_are_checked(tmp_path: Path) -> None:
    from agents.train import load_hyperparams
    from predictors import ConfigError

    bad = tmp_path / "hp.yaml"
    bad.write_text("warm_start:\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError, match="warm_start.learning_rat"):
        load_hyperparams("ppo", bad)
    for text, match in [("rollout_fine_tune:\n    learning_rat: 0.1",
                         "rollout_fine_tune.learning_rat"),
                        ("rollout_fine_tune: 3", "rollout_fine_tune.*mapping"),
                        ("rollout_fine_tune:\n    n_epochs: many", "n_epochs")]:
        bad.write_text(f"warm_start:\n  {text}\n")
        with pytest.raises(ConfigError, match=match):
            load_hyperparams("ppo", bad)


def test_true_comparison_is_paired(tiny_synthetic_run) -> None:
    from agents.baselines import make_rule
    from agents.bench_rl import true_comparison
    from predictors import default_catalog, observation_names

    data, _ = tiny_synthetic_run
    pols = {n: make_rule(n, default_catalog(), observation_names())
            for n in ("never", "email_capped")}
    pols["copy"] = make_rule("email_capped", default_catalog(), observation_names())
    res = true_comparison(data, pols, "email_capped", n_users=150, horizon=4)
    assert res["n_users"] == 150
    assert res["policies"]["copy"]["vs_reference"]["mean"] == 0.0  # common random numbers
    assert res["policies"]["email_capped"]["vs_reference_pct"]["mean"] == 0.0
    assert res["policies"]["never"]["vs_reference"]["mean"] != 0.0


def test_bench_train_world_reports_time_to_value(tiny_synthetic_run, tmp_path: Path) -> None:
    data, pred = tiny_synthetic_run
    out = tmp_path / "bench"
    cfg = tmp_path / "hp.yaml"
    cfg.write_text("n_steps: 8\nbatch_size: 64\n")
    assert run_main(["bench", "train", "--predictor", str(pred), "--data", str(data),
                     "--env", "world", "--algos", "ppo", "--seeds", "0,1", "--timesteps",
                     "512", "--n-envs", "32", "--reference", "rule:email_capped",
                     "--eval-users", "100", "--config", str(cfg), "--out", str(out)]) == 0
    b = json.loads((out / "bench.json").read_text())
    assert [r["run"] for r in b["runs"]] == ["ppo_s0", "ppo_s1"]
    assert b["comparison"]["n_users"] == 100
    assert "time to pass" in (out / "bench.md").read_text()
    for r in b["runs"]:
        assert r["seconds_to_pass"] is None or r["seconds_to_pass"] >= 0


def test_bench_train_passes_the_penalty_to_training(tmp_path: Path, capsys) -> None:
    """``bench train --penalty`` reaches the training config (a negative one is refused there)."""
    assert run_main(["bench", "train", "--predictor", str(tmp_path / "p"), "--data",
                     str(tmp_path / "d"), "--reference", "rule:email_capped",
                     "--penalty", "-1"]) != 0
    assert "penalty" in capsys.readouterr().err


def test_bench_table_shows_the_warm_start_time() -> None:
    """A warm-started run shows its warm start's wall time; a rule row and a cold run show -."""
    from agents.bench_rl import bench_table

    ci = {"mean": 1.0, "low": 0.5, "high": 1.5}
    row = {"return": ci, "vs_reference": ci, "vs_reference_pct": ci}
    run = {"timesteps": 1024, "train_seconds": 3.0, "cpu_seconds": 2.0, "seconds_to_pass": None,
           "seconds_to_ci_above": 7.0}
    runs = [{**run, "run": "warm", "warm_start": {"seconds": 42.4}},
            {**run, "run": "cold", "warm_start": None}]
    result = {"reference": "rule:x", "runs": runs,
              "comparison": {"n_users": 10, "horizon": 26,
                             "policies": {"reference": row, "warm": row, "cold": row}}}
    lines = {ln.split(" | ")[0].strip("| "): ln.split(" | ") for ln in
             bench_table(result).splitlines() if ln.startswith("| ")}
    col = lines["policy"].index("warm-start s")
    assert lines["warm"][col] == "42" and lines["cold"][col] == "-"
    assert lines["reference"][col] == "-"


def test_dqn_warm_start_evaluates_the_rule(tiny_synthetic_run, tmp_path: Path) -> None:
    """Fitted Q evaluation of a rule: the greedy Q action is mostly the rule's, the replay
    buffer holds the transitions, and DQN training starts from there."""
    from agents.baselines import make_rule
    from agents.batched_sb3 import VectorisedDQN
    from agents.warm_start import QWarmStartConfig, warm_start_q
    from predictors import default_catalog, observation_names

    data, pred = tiny_synthetic_run
    env = _world_env(data, "expected", n=64)
    model = VectorisedDQN("MlpPolicy", env, seed=0, device="cpu", learning_starts=0,
                          buffer_size=10_000, batch_size=64)
    teacher = make_rule("email_capped", default_catalog(), observation_names())
    stats = warm_start_q(model, env, teacher, QWarmStartConfig(n_steps=10, rounds=3, epochs=4,
                                                              batch_size=128, margin=1.0))
    assert stats["transitions"] == 640 and stats["agreement"] > 0.8
    assert model.replay_buffer.size() == 10
    assert model._teacher is teacher  # the margin term stays on during DQN's training
    with pytest.raises(ValueError, match="explore"):
        QWarmStartConfig(explore=0.0)
    import yaml

    from agents.train import load_hyperparams

    out = tmp_path / "d"
    fine = load_hyperparams("dqn")["warm_start"]
    fqe = tmp_path / "fqe.yaml"  # the default fine-tuning keys, the fitted-Q warm start
    fqe.write_text(yaml.safe_dump({"warm_start": {**fine, "method": "fqe"}}))
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data), "--env",
                     "world", "--algo", "dqn", "--warm-start", "rule:email_capped",
                     "--config", str(fqe), "--out", str(out), *TINY]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["warm_start"]["transitions"] > 0
    used = yaml.safe_load((out / "hyperparams.yaml").read_text())
    assert all(used[k] == v for k, v in fine.items()
               if k not in ("method", "rollout", "rollout_clone"))
    assert used["warm_start"]["method"] == "fqe"
    assert "train/margin_loss" in pd.read_csv(out / "progress.csv").columns
    from agents.sb3_policy import load_sb3_policy

    assert load_sb3_policy(out).model._teacher is None  # not saved with the model


def test_static_features_reach_training_evaluation_and_export(tiny_synthetic_run,
                                                               tmp_path: Path) -> None:
    """--static-features: the policy observes the users table's encoded columns, in the true
    world and in the learned shop; evaluate gives them to it (and history only to the rest),
    the final TRUE comparison of the bench appends them, the export lists them."""
    from agents.loading import reads_static

    data, pred = tiny_synthetic_run
    out = tmp_path / "s"
    small = tmp_path / "small.yaml"  # the rollout warm start on a small budget
    small.write_text("warm_start:\n  rollout:\n    n_states: 256\n    epochs: 2\n")
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data), "--env",
                     "world", "--static-features", "--warm-start", "rule:email_capped",
                     "--config", str(small), "--out", str(out), *TINY]) == 0
    names = json.loads((out / "policy.json").read_text())["observation_names"]
    statics = [n for n in names if n.startswith("static:")]
    assert statics and names[-len(statics):] == statics and reads_static(str(out))
    assert any(n.startswith("static:push_opt_in") for n in statics)
    assert not reads_static("rule:never")
    ev = tmp_path / "e"  # the rule is given the history columns, the policy all of them
    assert run_main(["evaluate", "--predictor", str(pred), "--data", str(data), "--policy",
                     str(out), "--policy", "rule:email_capped", "--min-rollouts", "0",
                     "--out", str(ev)]) == 0
    rows = json.loads((ev / "evaluation.json").read_text())["policies"]
    assert len(rows) == 2 and all("true" in r for r in rows)
    exp = tmp_path / "x"
    assert run_main(["export", "--policy", str(out), "--out", str(exp)]) == 0
    manifest = json.loads((exp / "manifest.json").read_text())
    assert manifest["inputs"]["obs"]["features"] == names
    assert manifest["inputs"]["obs"]["static_encoder"]
    # serving builds the static columns from the users table exactly as training encoded them
    from agents.bench_rl import static_features
    from agents.serving import add_static_features
    from predictors import load_users, open_dataset

    users = load_users(open_dataset(data), validate=False)
    served = add_static_features(users, manifest["inputs"]["obs"]["static_encoder"])
    trained, trained_names = static_features(pred, data)
    assert trained_names == statics
    ids = pd.read_parquet(Path(data) / "truth" / "users.parquet")["user_id"]
    served = served.set_index("user_id").loc[ids, statics].to_numpy()
    np.testing.assert_allclose(served, trained, atol=1e-5)
    dec = tmp_path / "dec.parquet"
    assert run_main(["score", "--model", str(exp), "--data", str(data), "--out", str(dec)]) == 0
    assert len(pd.read_parquet(dec)) > 0
    b = tmp_path / "b"
    assert run_main(["bench", "train", "--predictor", str(pred), "--data", str(data),
                     "--env", "world", "--algos", "ppo", "--seeds", "0", "--timesteps", "512",
                     "--n-envs", "32", "--reference", "rule:email_capped", "--static-features",
                     "--eval-users", "100", "--out", str(b)]) == 0
    bench = json.loads((b / "bench.json").read_text())
    assert bench["config"]["static_features"] is True and bench["comparison"]["n_users"] == 100


def test_serving_static_features_from_raw_columns() -> None:
    from agents.serving import add_static_features
    from predictors.errors import DataValidationError

    enc = {"numeric": {"age": [40.0, 10.0]}, "categorical": {"tier": ["gold", "none"]}}
    table = pd.DataFrame({"user_id": [1, 2], "age": [50, None], "tier": ["gold", "silver"]})
    out = add_static_features(table, enc)
    assert out["static:age"].tolist() == [1.0, 0.0]  # standardised; missing -> 0
    assert out["static:tier=gold"].tolist() == [1.0, 0.0]
    assert out["static:tier=none"].tolist() == [0.0, 0.0]  # unseen category: all zero
    with pytest.raises(DataValidationError, match="tier"):
        add_static_features(table.drop(columns="tier"), enc)
