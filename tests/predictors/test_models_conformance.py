"""Every model family through the same checks: shapes, ranges, sampling, save/load round trip,
carried state == window re-read, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from predictors.errors import ConfigError
from predictors.models import FAMILIES, BehaviorPredictor, PredictorConfig, toy_panel

NAMES = ["none", "a1", "a2"]


@pytest.fixture(scope="module")
def toy():
    return toy_panel(n_users=60, n_periods=7, seed=3, lift=(0.0, 1.0, -1.0))


def _fit(toy, family: str, seed: int = 0, **kw) -> BehaviorPredictor:
    panel, users = toy
    cfg = PredictorConfig(family=family, epochs=2, hidden=8, history=3, seed=seed,
                          device="cpu", batch_size=64, **kw)
    return BehaviorPredictor(cfg).fit(panel, NAMES, users, progress=False)


@pytest.fixture(scope="module", params=FAMILIES)
def fitted(request, toy):
    return _fit(toy, request.param)


def test_predict_shapes_and_ranges(fitted, toy):
    panel, users = toy
    keys, p = fitted.predict(panel, users)
    assert len(keys) == len(panel)
    assert keys[["user_id", "period"]].to_numpy().tolist() == \
        panel[["user_id", "period"]].to_numpy().tolist()
    for arr in (p.p_visit, p.p_purchase, p.p_unsubscribe, p.p_churn):
        assert arr.shape == (len(panel), len(NAMES))
        assert np.all((arr > 0) & (arr < 1))
    assert np.all(p.revenue_sigma > 0) and np.all(p.expected_revenue >= 0)
    frame = p.to_frame()
    assert {f"p_purchase__{a}" for a in NAMES} <= set(frame.columns)


def test_sample(fitted, toy):
    panel, users = toy
    _, p = fitted.predict(panel, users)
    action = np.arange(len(panel)) % len(NAMES)
    a = p.sample(action, np.random.default_rng(0))
    b = p.sample(action, np.random.default_rng(0))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.any(a["purchase"] & ~a["visit"])
    assert np.all(a["revenue"][~a["purchase"]] == 0) and np.all(a["revenue"][a["purchase"]] > 0)
    with pytest.raises(ValueError, match="action"):
        p.sample(np.full(len(panel), 7), np.random.default_rng(0))


def test_save_load_round_trip(fitted, toy, tmp_path):
    panel, users = toy
    fitted.save(tmp_path / "run")
    again = BehaviorPredictor.load(tmp_path / "run")
    _, p1 = fitted.predict(panel, users)
    _, p2 = again.predict(panel, users)
    np.testing.assert_array_equal(p1.p_purchase, p2.p_purchase)
    np.testing.assert_array_equal(p1.revenue_mu, p2.revenue_mu)
    assert again.config == fitted.config and again.action_names_ == fitted.action_names_


def test_carried_state_equals_window(fitted, toy):
    """Stepping the state period by period gives the predictions of re-reading the history."""
    panel, users = toy
    data = fitted.tensors(panel, users)
    _, full = fitted.predict(panel, users)
    per_user = data.valid.sum(axis=1)
    state = fitted.initial_state(data.n_users, data.static)
    stepped = np.zeros((data.n_users, data.raw.shape[1], len(NAMES)))
    for t in range(data.raw.shape[1]):
        stepped[:, t] = fitted.predict_from_state(state).p_purchase
        state = fitted.step(state, data.raw[:, t], data.action[:, t])
    flat = np.concatenate([stepped[u, :per_user[u]] for u in range(data.n_users)])
    np.testing.assert_allclose(flat, full.p_purchase, atol=1e-5)


def test_seeded_reproducibility(toy):
    panel, users = toy
    for family in ("logistic", "gru"):
        a = _fit(toy, family, seed=5).predict(panel, users)[1].p_visit
        b = _fit(toy, family, seed=5).predict(panel, users)[1].p_visit
        c = _fit(toy, family, seed=6).predict(panel, users)[1].p_visit
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)


def test_fit_leaves_global_rng_alone(toy):
    import torch

    before = torch.random.get_rng_state().clone()
    _fit(toy, "logistic", seed=9)
    assert torch.equal(before, torch.random.get_rng_state())


def test_embedding_conditioning_runs(toy):
    panel, users = toy
    pred = _fit(toy, "mlp", conditioning="embedding")
    assert pred.predict(panel, users)[1].p_visit.shape == (len(panel), len(NAMES))


@pytest.mark.parametrize("kw, match", [
    ({"family": "xgboost"}, "family"),
    ({"history": 0}, "history"),
    ({"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction"),
    ({"conditioning": "film"}, "conditioning"),
    ({"lr": 0.0}, "lr"),
    ({"device": "tpu"}, "device"),
])
def test_invalid_config(kw, match):
    with pytest.raises(ConfigError, match=match):
        PredictorConfig(**kw)


def test_unfitted_predictor_raises(toy):
    with pytest.raises(ConfigError, match="not fitted"):
        BehaviorPredictor().predict(*toy)
