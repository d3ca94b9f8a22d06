"""Export parity: onnxruntime reproduces the SB3 policy; scoring needs no torch; checksums."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.logger import Logger

from agents.export import export_policy, read_manifest
from agents.serving import ExportedPolicy, score_table
from envs import CapConfig, ShopVecEnv, load_learned_shop
from predictors import CheckpointError, DataValidationError

N_OBS = 10_000


@pytest.fixture(scope="module")
def shop(tiny_run):
    data, pred = tiny_run
    return load_learned_shop(pred, data, start_users="all", caps=CapConfig(coupon_gap=3))


@pytest.fixture(scope="module")
def sim_obs(shop) -> tuple[np.ndarray, np.ndarray]:
    """10,000 observations (and their masks) visited by a random policy in the simulator."""
    venv = ShopVecEnv(shop, n_envs=1000, horizon=8, seed=0, invalid_action="noop")
    rng = np.random.default_rng(0)
    obs, masks = [venv.reset()], [venv.action_masks()]
    while sum(len(o) for o in obs) < N_OBS:
        o, *_ = venv.step(rng.integers(5, size=1000))
        obs.append(o)
        masks.append(venv.action_masks())
    return np.concatenate(obs)[:N_OBS], np.concatenate(masks)[:N_OBS]


def _train(algo: str, shop):
    venv = ShopVecEnv(shop, n_envs=64, horizon=8, seed=0, invalid_action="noop")
    kw = dict(seed=0, device="cpu", policy_kwargs={"net_arch": [32, 32]})
    if algo == "dqn":
        model = DQN("MlpPolicy", venv, learning_starts=64, buffer_size=5000, batch_size=64,
                    exploration_final_eps=0.05, **kw)
    elif algo == "ppo":
        model = PPO("MlpPolicy", venv, n_steps=16, batch_size=256, n_epochs=1, **kw)
    else:
        model = MaskablePPO("MlpPolicy", venv, n_steps=16, batch_size=256, n_epochs=1, **kw)
    model.set_logger(Logger(None, []))  # silent; SB3's default logger makes a folder in /tmp
    model.learn(2048)
    return model


def _sb3_probs(model, obs: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    with torch.no_grad():
        t = torch.as_tensor(obs)
        if mask is not None:
            dist = model.policy.get_distribution(t, action_masks=mask)
        else:
            dist = model.policy.get_distribution(t)
        return dist.distribution.probs.numpy()


@pytest.mark.parametrize("algo", ["ppo", "maskable-ppo", "dqn"])
def test_onnx_parity_on_simulated_observations(algo, shop, sim_obs, tmp_path) -> None:
    obs, masks = sim_obs
    model = _train(algo, shop)
    export_policy(model, tmp_path, observation_names=shop.observation_names, spec=shop.spec,
                  algo=algo)
    pol = ExportedPolicy(tmp_path)
    use_mask = algo == "maskable-ppo"
    m = masks if use_mask else None
    probs, greedy = pol._run(obs, m)
    if algo == "dqn":
        q = model.q_net(torch.as_tensor(obs)).detach().numpy()
        assert (greedy == q.argmax(axis=1)).all()
        eps = model.exploration_final_eps
        expected = np.full_like(probs, eps / probs.shape[1])
        expected[np.arange(len(obs)), greedy] += 1 - eps
        np.testing.assert_allclose(probs, expected, atol=1e-6)
    else:
        sb3_actions, _ = (model.predict(obs, deterministic=True, action_masks=m) if use_mask
                          else model.predict(obs, deterministic=True))
        assert (greedy == sb3_actions).all()
        np.testing.assert_allclose(probs, _sb3_probs(model, obs, m), atol=1e-5)
    if use_mask:
        assert (probs[~masks] < 1e-6).all()
    man = read_manifest(tmp_path)
    assert man["inputs"]["obs"]["features"] == list(shop.observation_names)
    assert [a["name"] for a in man["actions"]] == shop.spec.action_names
    assert man["versions"]["torch"] and man["versions"]["onnx_opset"] == 17


def test_tampered_model_is_refused(shop, tmp_path) -> None:
    model = _train("ppo", shop)
    export_policy(model, tmp_path, observation_names=shop.observation_names, spec=shop.spec)
    onnx_file = tmp_path / "policy.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match="does not match the manifest"):
        ExportedPolicy(tmp_path)


def test_score_validates_and_logs_propensities(shop, sim_obs, tmp_path) -> None:
    obs, _ = sim_obs
    model = _train("ppo", shop)
    export_policy(model, tmp_path / "exp", observation_names=shop.observation_names,
                  spec=shop.spec)
    pol = ExportedPolicy(tmp_path / "exp")
    table = pd.DataFrame(obs[:500], columns=shop.observation_names)
    table.insert(0, "user_id", np.arange(500))
    dec = score_table(pol, table, mode="sample", seed=1)
    assert len(dec) == 500 and set(dec["action"]) <= set(shop.spec.action_names)
    probs = dec[[f"prob__{a}" for a in shop.spec.action_names]].to_numpy()
    np.testing.assert_allclose(dec["propensity"], probs[np.arange(500), dec["action_index"]])
    assert dec.equals(score_table(pol, table, mode="sample", seed=1))
    bad = table.drop(columns=[shop.observation_names[3]])
    with pytest.raises(DataValidationError, match=shop.observation_names[3]):
        score_table(pol, bad)
    bad = table.copy()
    bad.loc[7, shop.observation_names[0]] = np.nan
    with pytest.raises(DataValidationError, match="row 8"):
        score_table(pol, bad)


def test_score_cli_imports_no_torch(shop, sim_obs, tmp_path) -> None:
    obs, _ = sim_obs
    model = _train("ppo", shop)
    export_policy(model, tmp_path / "exp", observation_names=shop.observation_names,
                  spec=shop.spec)
    pd.DataFrame(obs[:100], columns=shop.observation_names).to_parquet(tmp_path / "u.parquet")
    code = (
        "import sys\n"
        "from agents.cli import run_main\n"
        f"rc = run_main(['score', '--model', r'{tmp_path / 'exp'}', '--input', "
        f"r'{tmp_path / 'u.parquet'}', '--out', r'{tmp_path / 'd.parquet'}'])\n"
        "assert rc == 0, rc\n"
        "heavy = [m for m in ('torch', 'stable_baselines3', 'sb3_contrib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr[-2000:]
    assert "HEAVY []" in res.stdout
    assert len(pd.read_parquet(tmp_path / "d.parquet")) == 100
    assert json.loads((tmp_path / "d.json").read_text())["rows"] == 100


def test_score_decision_log_is_ope_input(shop, sim_obs, tmp_path, capsys) -> None:
    """A decision log of `score`, joined with rewards, goes straight into `nudgegym ope`."""
    from agents.cli import run_main
    from agents.ope import IPS
    from agents.ope.decisions import logged_data_from_decisions

    obs, _ = sim_obs
    model = _train("ppo", shop)
    export_policy(model, tmp_path / "exp", observation_names=shop.observation_names,
                  spec=shop.spec)
    table = pd.DataFrame(obs[:800], columns=shop.observation_names)
    table.insert(0, "user_id", np.arange(800))
    dec = score_table(ExportedPolicy(tmp_path / "exp"), table, mode="sample", seed=2)
    rng = np.random.default_rng(0)
    dec["reward"] = (dec["action"] == "email") + rng.normal(0, 0.1, len(dec))
    data = logged_data_from_decisions(dec)
    names = list(shop.spec.action_names)
    own = dec[[f"prob__{a}" for a in names]].to_numpy()
    # the serving policy evaluated on its own log: every weight is 1
    assert IPS().estimate(data, own) == pytest.approx(dec["reward"].mean(), abs=1e-12)
    dec.to_parquet(tmp_path / "decisions.parquet")
    target = pd.DataFrame({"user_id": dec["user_id"][::-1].to_numpy()})
    for a in names:
        target[f"prob__{a}"] = 1.0 / len(names)
    target.to_parquet(tmp_path / "uniform.parquet")
    rc = run_main(["ope", str(tmp_path / "decisions.parquet"), "--target-probs",
                   str(tmp_path / "uniform.parquet"), "--boot", "30", "--out",
                   str(tmp_path / "ope")])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "ope" / "ope.json").read_text())
    assert res["results"][0]["policy"] == "uniform.parquet"
    ips = next(e for e in res["results"][0]["estimates"] if e["estimator"] == "ips")
    w = (1.0 / len(names)) / dec["propensity"].to_numpy()
    assert ips["mean"] == pytest.approx(float(np.mean(w * dec["reward"])), rel=1e-9)
    bad = target.iloc[:-1]
    bad.to_parquet(tmp_path / "short.parquet")
    assert run_main(["ope", str(tmp_path / "decisions.parquet"), "--target-probs",
                     str(tmp_path / "short.parquet"), "--out", str(tmp_path / "o2")]) == 1
    assert "no row for logged {'user_id'" in capsys.readouterr().err
