"""Ensemble members run as one stacked network match the members run one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import predictors.models.stacked as stacked
from predictors.models import BehaviorPredictor, PredictorConfig, PredictorEnsemble, toy_panel
from predictors.models.train import torch_threads


def _members(family: str, layers: int = 1, k: int = 3, conditioning: str = "heads",
             calibration: str | None = None) -> list[BehaviorPredictor]:
    panel, users = toy_panel(n_users=120, n_periods=6, seed=0, targeted=True)
    out = []
    for m in range(k):
        p = BehaviorPredictor(PredictorConfig(family=family, hidden=8, layers=layers,
                                              conditioning=conditioning, epochs=1,
                                              device="cpu", seed=0, member=m,
                                              num_threads=1)).fit(
            panel, ["none", "a1"], users, progress=False)
        if calibration is not None:
            p.calibrate(panel, users, method=calibration)
        out.append(p)
    return out


def _period(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.zeros((n, 7), np.float32)
    raw[:, 0] = rng.random(n) < 0.5
    raw[:, 1] = rng.poisson(2.0, n) * raw[:, 0]
    raw[:, 3] = (raw[:, 0] > 0) & (rng.random(n) < 0.3)
    raw[:, 6] = raw[:, 3] * rng.lognormal(3.0, 0.5, n)
    return raw, rng.integers(-1, 2, n)


def _compare(members: list[BehaviorPredictor], n: int = 50, periods: int = 4) -> None:
    fast, slow = PredictorEnsemble(members), PredictorEnsemble(members)
    slow.stacked = False
    assert fast.stacked
    rng = np.random.default_rng(0)
    static = rng.standard_normal((n, members[0].encoder_.n_features)).astype(np.float32)
    sf, ss = fast.initial_state(n, static), slow.initial_state(n, static)
    for _ in range(periods):
        mf, ms = fast.member_outputs(sf), slow.member_outputs(ss)
        np.testing.assert_allclose(mf, ms, rtol=1e-5, atol=1e-5)
        pf = fast.predict_from_state(sf, np.random.default_rng(5))
        ps = slow.predict_from_state(ss, np.random.default_rng(5))
        for name in ("p_visit", "p_purchase", "revenue_mu", "revenue_sigma", "p_churn"):
            np.testing.assert_allclose(getattr(pf, name), getattr(ps, name), rtol=1e-5,
                                       atol=1e-6)
        np.testing.assert_allclose(fast.last_disagreement_, slow.last_disagreement_,
                                   rtol=1e-4, atol=1e-6)
        action = rng.integers(0, 2, n)
        want = slow.last_disagreement_[np.arange(n), action]
        np.testing.assert_allclose(fast.disagreement(action), want, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(slow.disagreement(action), want)
        # only the drawn member's output layers: the same predictions, no spread
        pick = fast.predict_from_state(sf, np.random.default_rng(5), with_spread=False)
        for name in ("p_visit", "p_purchase", "revenue_mu", "revenue_sigma", "p_unsubscribe"):
            np.testing.assert_allclose(getattr(pick, name), getattr(ps, name), rtol=1e-5,
                                       atol=1e-6)
        with pytest.raises(RuntimeError, match="with_spread"):
            fast.disagreement(action)
        raw, act = _period(rng, n)
        sf, ss = fast.step(sf, raw, act), slow.step(ss, raw, act)
    # the members really differ, so the comparison is not trivial
    assert not np.allclose(mf[0], mf[1], atol=1e-3)


@pytest.mark.parametrize(("family", "layers"),
                         [("mlp", 1), ("mlp", 2), ("logistic", 1), ("gru", 1), ("gru", 2)])
def test_stacked_ensemble_matches_member_by_member(family, layers, monkeypatch) -> None:
    monkeypatch.setattr(stacked, "ROW_CHUNK", 16)  # 50 rows: three full chunks and a part
    _compare(_members(family, layers))


def test_stacked_ensemble_with_calibrated_members() -> None:
    _compare(_members("gru", calibration="temperature"), periods=2)


def test_member_draws_follow_the_generator() -> None:
    members = _members("gru", k=3)
    ens = PredictorEnsemble(members)
    n = 300
    state = ens.initial_state(n)
    raw, act = _period(np.random.default_rng(1), n)
    state = ens.step(state, raw, act)
    got = ens.predict_from_state(state, np.random.default_rng(7)).p_visit
    pick = np.random.default_rng(7).integers(0, 3, n)
    each = np.stack([p.p_visit for p in ens.member_predictions(state)])  # (K, n, A)
    np.testing.assert_array_equal(got, each[pick, np.arange(n)])
    assert set(np.unique(pick)) == {0, 1, 2}
    again = ens.predict_from_state(state, np.random.default_rng(7)).p_visit
    other = ens.predict_from_state(state, np.random.default_rng(8)).p_visit
    assert np.array_equal(got, again) and not np.array_equal(got, other)


@pytest.mark.parametrize("family", ["mlp", "gru"])
def test_stacked_outputs_do_not_depend_on_the_thread_count(family) -> None:
    ens = PredictorEnsemble(_members(family, k=2))
    n = 2 * stacked.ROW_CHUNK + 7
    out = {}
    for threads in (1, 2):
        with torch_threads(threads):
            state = ens.initial_state(n)
            for _ in range(3):
                raw, act = _period(np.random.default_rng(4), n)
                state = ens.step(state, raw, act)
            out[threads] = ens.member_outputs(state)
    np.testing.assert_array_equal(out[1], out[2])


def test_stacked_state_layout_and_fallbacks() -> None:
    gru = PredictorEnsemble(_members("gru", k=2))
    h, static = gru.initial_state(5)
    assert h.shape == (2, 1, 5, 8) and static.shape[0] == 5
    lstm = PredictorEnsemble(_members("lstm", k=2))
    assert not lstm.stacked  # stepped member by member, each in its own state
    assert len(lstm.initial_state(3)) == 2 * len(lstm.members[0].initial_state(3))
    emb = _members("mlp", k=2, conditioning="embedding")
    assert not stacked.FeatureMembers(emb_nets := [m.net_ for m in emb]).stacked
    assert stacked.can_stack(emb_nets)  # one shared state, the heads called per member
    _compare(emb, periods=2)
    with pytest.raises(ValueError, match="no stacked form"):
        stacked.stack_members([m.net_ for m in lstm.members])


def test_recurrent_fallback_selects_each_members_own_prediction() -> None:
    members = _members("lstm", k=2)
    ens = PredictorEnsemble(members)
    state = ens.initial_state(3)
    own = [m.predict_from_state(s) for m, s in zip(members, ens._split(state), strict=True)]
    pick = np.random.default_rng(1).integers(0, 2, 3)
    got = ens.predict_from_state(state, np.random.default_rng(1))
    want = np.stack([p.p_visit for p in own])[pick, np.arange(3)]
    np.testing.assert_allclose(got.p_visit, want, rtol=1e-6)
    assert torch.is_tensor(state[0])
