"""The ``markov`` family: known answers on a Markov-chain panel, the smoothing, the discrete
state, artifacts, and driving the learned shop. (Shapes, sampling, save/load and carried state
vs window re-read run for every family in test_models_conformance.py.)"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import torch

from predictors.errors import CheckpointError, ConfigError
from predictors.models import BehaviorPredictor, PredictorConfig, toy_panel
from predictors.models.chain import chain_panel, chain_probabilities
from predictors.models.markov import (
    MarkovNet,
    markov_table,
    shrink_binary,
    shrink_lognormal,
)

LIFT = (0.0, 1.0, -1.0)
NAMES = ["none", "a1", "a2"]


def _cfg(**kw) -> PredictorConfig:
    return PredictorConfig(family="markov", device="cpu", **kw)


@pytest.fixture(scope="module")
def chain():
    return chain_panel(n_users=6000, n_periods=12, seed=1, lift=LIFT, churn=0.0, segments=False)


@pytest.fixture(scope="module")
def fitted(chain):
    panel, users = chain
    return BehaviorPredictor(_cfg()).fit(panel, NAMES, users, progress=False)


def test_recovers_known_chain(chain, fitted):
    """Next period depends on (previous level, action) only: the cells must find the truth."""
    panel, users = chain
    keys, p = fitted.predict(panel, users)
    prev = panel["prev_level"].to_numpy()
    for a in range(len(NAMES)):
        tv, tp = chain_probabilities(prev, np.full(len(prev), a), LIFT)
        assert np.mean(np.abs(p.p_visit[:, a] - tv)) < 0.02
        assert np.mean(np.abs(p.p_purchase[:, a] - tp)) < 0.02
    for a in (1, 2):  # the planted average effects against none
        tv1, _ = chain_probabilities(prev, np.full(len(prev), a), LIFT)
        tv0, _ = chain_probabilities(prev, np.zeros(len(prev), int), LIFT)
        pred_eff = np.mean(p.p_visit[:, a] - p.p_visit[:, 0])
        assert abs(pred_eff - np.mean(tv1 - tv0)) < 0.15 * abs(np.mean(tv1 - tv0))
    # log revenue | purchase ~ Normal(3, 0.5) in every state
    assert np.allclose(np.median(p.revenue_mu), 3.0, atol=0.05)
    assert np.allclose(np.median(p.revenue_sigma), 0.5, atol=0.05)


def test_priors_picked_on_validation(fitted):
    rec = fitted.train_result_.history[0]
    priors = [rec[f"prior_{k}"] for k in ("visit", "purchase", "revenue", "unsubscribe",
                                          "churn")]
    assert all(p > 0 for p in priors) and np.isfinite(rec["val_loss"])
    net = fitted.net_
    assert net.prior.tolist() == [rec[f"prior_{k}"] for k in ("visit", "purchase", "revenue",
                                                              "unsubscribe", "churn")]


def test_shrinkage_backoff():
    # Two states in one group, two actions. State 0 is well observed; state 1 only under
    # action 0.
    n = np.array([[1000.0, 1000.0], [400.0, 0.0]])
    y = np.array([[100.0, 300.0], [200.0, 0.0]])
    group = np.zeros(2, int)
    p = shrink_binary(n, y, group, 1, m=10.0)
    assert abs(p[0, 0] - 0.1) < 0.01 and abs(p[0, 1] - 0.3) < 0.01  # data dominate
    assert abs(p[1, 0] - 0.5) < 0.02
    # The empty cell takes its level from its state and the action's effect from its group,
    # measured against the states a1 was sent to (logit +1.35 in state 0: sigmoid(1.35) =
    # 0.79), not from raw group rates that mix states (those would give about 0.56).
    assert 0.7 < p[1, 1] < 0.8
    # An infinitely strong prior pulls every cell to the global rate.
    p_inf = shrink_binary(n, y, group, 1, m=1e12)
    assert np.allclose(p_inf, y.sum() / n.sum(), atol=1e-3)
    # Log-normal moments: empirical where observed, pooled where empty.
    s1 = n * 3.0
    s2 = n * (3.0 ** 2 + 0.25)
    mu, var = shrink_lognormal(n, s1, s2, group, 1, m=10.0)
    assert np.allclose(mu[n > 0], 3.0) and np.allclose(var[n > 0], 0.25, atol=1e-6)
    assert np.isclose(mu[1, 1], 3.0) and np.isclose(var[1, 1], 0.25, atol=1e-6)


def test_state_of_a_known_history():
    cfg = _cfg(markov_order=2, markov_recency_edges=(2, 4), markov_frequency_edges=(1, 3),
               markov_contact_edges=(1, 2),
               markov_contact_window=3)
    net = MarkovNet(cfg, n_actions=2, n_static=0)
    net.none_index.fill_(0)
    raw = torch.zeros(1, 5, 7)
    raw[0, 0, 0] = 1  # step 0: visited
    raw[0, 1, [0, 3, 6]] = torch.tensor([1.0, 1.0, 20.0])  # step 1: purchased
    raw[0, 2, 5] = 1  # step 2: unsubscribed, no visit
    action = torch.tensor([[1, 1, 0, 0, 1]])
    idx = net.state_index(raw, action)[0].tolist()
    names = net.state_names().iloc[idx].reset_index(drop=True)
    assert names.loc[0].to_dict() == {"levels": "before/before", "since_active": "never",
                                      "since_purchase": "never", "purchases": "0",
                                      "contacts": "0", "unsubscribed": False}
    assert names.loc[2, "levels"] == "visited/purchased"
    assert names.loc[2, "contacts"] == "2+" and names.loc[2, "since_active"] == "1"
    assert names.loc[1, "purchases"] == "0" and names.loc[2, "purchases"] == "1-2"
    # step 4: last active 3 periods ago (bucket 2-3), contacts in steps 1-3: one.
    assert names.loc[4].to_dict() == {"levels": "none/none", "since_active": "2-3",
                                      "since_purchase": "2-3", "purchases": "1-2",
                                      "contacts": "1", "unsubscribed": True}


def test_state_tensors_have_a_batch_axis(fitted):
    """The simulator finds each state tensor's batch axis by comparing batch sizes 1 and 2."""
    s1, s2 = fitted.initial_state(1), fitted.initial_state(2)
    assert len(s1) == len(s2) == 7  # six count-state tensors and the static features
    for a, b in zip(s1, s2, strict=True):
        assert a.shape[0] == 1 and b.shape[0] == 2 and a.shape[1:] == b.shape[1:]


def test_markov_table_is_readable(fitted):
    t = markov_table(fitted, min_count=50)
    assert set(t["action"]) == set(NAMES) and (t["n"] >= 50).all()
    assert t["n"].is_monotonic_decreasing
    purchased = t[t["levels"] == "purchased"]
    nothing = t[t["levels"] == "none"]
    assert purchased["p_visit"].mean() > nothing["p_visit"].mean()  # LEVEL_EFFECT is planted
    with pytest.raises(TypeError, match="markov"):
        markov_table(BehaviorPredictor(PredictorConfig(family="logistic")))


def test_ipw_and_fixed_prior_change_the_fit():
    panel, users = toy_panel(n_users=150, n_periods=8, seed=2, lift=(0.0, 1.0), targeted=True)
    a = BehaviorPredictor(_cfg(markov_prior=5.0)).fit(panel, ["none", "a1"], users,
                                                      progress=False)
    b = BehaviorPredictor(_cfg(markov_prior=5.0, ipw=True)).fit(panel, ["none", "a1"], users,
                                                                progress=False)
    assert a.net_.prior.tolist() == [5.0] * 5
    # IPW weights have mean 1 over the training rows: same total, different cells.
    assert float(b.net_.counts[..., 0].sum()) == pytest.approx(float(a.net_.counts[..., 0].sum()))
    assert not torch.allclose(a.net_.counts, b.net_.counts)


def test_saved_counts_and_mismatch(fitted, tmp_path):
    run = fitted.save(tmp_path / "run")
    blob = torch.load(run / "weights.pt", weights_only=True)
    assert blob["family"] == "markov"
    sd = blob["state_dict"]
    assert sd["counts"].dtype == torch.float64 and sd["counts"][..., 0].sum() > 0
    again = BehaviorPredictor.load(run)
    assert int(again.net_.none_index) == 0
    other = tmp_path / "other"
    shutil.copytree(run, other)
    meta = json.loads((other / "predictor.json").read_text())
    meta["config"]["markov_order"] = 2
    (other / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match"):
        BehaviorPredictor.load(other)


@pytest.mark.parametrize("kw, match", [
    ({"markov_order": 0}, "markov_order"),
    ({"markov_order": 7}, "markov_order"),
    ({"markov_recency_edges": (4, 2)}, "markov_recency_edges"),
    ({"markov_contact_edges": (0, 1)}, "markov_contact_edges"),
    ({"markov_prior": -1.0}, "markov_prior"),
    ({"markov_contact_window": 0}, "markov_contact_window"),
    ({"markov_frequency_edges": (2, 2)}, "markov_frequency_edges"),
])
def test_invalid_markov_config(kw, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(**kw)


def test_config_json_round_trip():
    cfg = _cfg(markov_recency_edges=(3, 9))
    again = PredictorConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.markov_recency_edges == (3, 9)


@pytest.mark.filterwarnings("ignore:warning. interventions:UserWarning")
def test_drives_the_learned_shop(tmp_path):
    from envs.shop_env import ShopVecEnv, load_learned_shop
    from predictors import build_panel, load_users, open_dataset
    from tests.conftest import make_tiny_dataset

    data = make_tiny_dataset(tmp_path / "data", n_users=60, n_periods=6)
    ds = open_dataset(data)
    pred = BehaviorPredictor(_cfg()).fit(build_panel(ds), ds.spec.action_names,
                                         load_users(ds), progress=False)
    venv = ShopVecEnv(load_learned_shop(pred, data, start_users="all"), n_envs=32, seed=0)
    obs = venv.reset()
    for _ in range(3):
        obs, reward, done, _ = venv.step(np.random.default_rng(0).integers(5, size=32))
    assert obs.shape[0] == 32 and np.isfinite(reward).all()


@pytest.mark.expensive
def test_fits_ten_million_user_periods_fast():
    panel, users = chain_panel(n_users=200_000, n_periods=50, seed=0)
    t0 = time.perf_counter()
    pred = BehaviorPredictor(_cfg()).fit(panel, NAMES, users, progress=False)
    assert time.perf_counter() - t0 < 30.0
    assert pred.net_.counts[..., 0].sum() > 6_000_000


@pytest.mark.expensive
@pytest.mark.filterwarnings("ignore:warning. interventions:UserWarning")
def test_cli_train_eval_predict(tmp_path):
    import pandas as pd

    from agents.cli._app import run_main
    from tests.conftest import make_tiny_dataset

    data = make_tiny_dataset(tmp_path / "data", n_users=60, n_periods=6)
    run, ev = tmp_path / "run", tmp_path / "eval"
    assert run_main(["train-predictor", "--data", str(data), "--model", "markov", "--out",
                     str(run), "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["family"] == "markov" and "prior_visit" in metrics["history"][0]
    assert run_main(["eval-predictor", "--predictor", str(run), "--data", str(data),
                     "--out", str(ev)]) == 0
    assert json.loads((ev / "metrics.json").read_text())["heads"]["visit"]["n"] > 0
    assert run_main(["predict", "--predictor", str(run), "--data", str(data), "--out",
                     str(tmp_path / "p.parquet")]) == 0
    assert "p_purchase__email" in pd.read_parquet(tmp_path / "p.parquet").columns


def test_cli_bench_chain_panel(tmp_path):
    from agents.cli._app import run_main

    bench = tmp_path / "bench"
    assert run_main(["bench", "predictor", "--families", "markov", "--panel", "chain",
                     "--users", "300", "--periods", "5", "--device", "cpu", "--out",
                     str(bench)]) == 0
    row = json.loads((bench / "bench.json").read_text())["results"][0]
    assert row["family"] == "markov" and row["panel_rows"] == 1500 and row["fit_seconds"] > 0


# ---------------------------------------------------------------- static user features
@pytest.fixture(scope="module")
def one_period_panel():
    """One period per user (like a randomized e-mail test): action a1 lifts visits of segment
    b (logit +1.5) and lowers those of segment a (-0.7); the state is the same for everyone."""
    panel, users = toy_panel(n_users=8000, n_periods=1, seed=3)
    rng = np.random.default_rng(4)
    seg_b = panel["user_id"].map(users.set_index("user_id")["segment"]).to_numpy() == "b"
    a1 = panel["action_index"].to_numpy() == 1
    logit = -1.0 + a1 * np.where(seg_b, 1.5, -0.7)
    visit = rng.random(len(panel)) < 1 / (1 + np.exp(-logit))
    panel["visits"] = visit.astype("int32")
    panel["active"] = visit
    return panel, users, seg_b


def test_static_features_make_the_effect_vary_across_users(one_period_panel):
    panel, users, seg_b = one_period_panel
    names = ["none", "a1"]
    effects = {}
    for static in (False, True):
        pred = BehaviorPredictor(_cfg(markov_static=static)).fit(panel, names, users,
                                                                 progress=False)
        _, p = pred.predict(panel, users)
        effects[static] = p.p_visit[:, 1] - p.p_visit[:, 0]
        if static:
            rec = pred.train_result_.history[0]
            assert np.isfinite(rec["static_l2_visit"])  # chosen on the validation users
            # the carried state (the simulator's path) gives the same predictions
            static_x = pred.encoder_.transform(users, panel["user_id"].to_numpy())
            out = pred.predict_from_state(pred.initial_state(len(panel), static_x))
            np.testing.assert_allclose(out.p_visit, p.p_visit, atol=1e-5)
    assert np.ptp(effects[False]) < 1e-6  # one state, no features: one effect for everyone
    eff = effects[True]
    true_b = 1 / (1 + np.exp(-0.5)) - 1 / (1 + np.exp(1.0))
    true_a = 1 / (1 + np.exp(1.7)) - 1 / (1 + np.exp(1.0))
    assert eff[seg_b].mean() == pytest.approx(true_b, abs=0.04)
    assert eff[~seg_b].mean() == pytest.approx(true_a, abs=0.04)
    assert eff[~seg_b].max() < 0 < eff[seg_b].min()


def test_static_offsets_saved_and_old_checkpoints_load(one_period_panel, tmp_path):
    panel, users, _ = one_period_panel
    pred = BehaviorPredictor(_cfg()).fit(panel, ["none", "a1"], users, progress=False)
    assert float(pred.net_.static_coef.abs().sum()) > 0
    run = pred.save(tmp_path / "run")
    _, p = pred.predict(panel, users)
    _, q = BehaviorPredictor.load(run).predict(panel, users)
    np.testing.assert_array_equal(p.p_visit, q.p_visit)
    blob = torch.load(run / "weights.pt", weights_only=True)
    del blob["state_dict"]["static_coef"]  # as written before static offsets existed
    torch.save(blob, run / "weights.pt")
    old = BehaviorPredictor.load(run)
    assert float(old.net_.static_coef.abs().sum()) == 0.0
    with pytest.raises(ConfigError, match="markov_static_l2"):
        _cfg(markov_static_l2=-1.0)
