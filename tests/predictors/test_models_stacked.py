"""Feature-family ensemble members stepped on one shared state match the members stepped one by
one."""

from __future__ import annotations

import numpy as np
import pytest

from predictors.models import BehaviorPredictor, PredictorConfig, PredictorEnsemble, toy_panel


@pytest.mark.parametrize(("family", "layers"), [("mlp", 1), ("logistic", 1)])
def test_stacked_ensemble_matches_member_by_member(family, layers) -> None:
    panel, users = toy_panel(n_users=120, n_periods=6, seed=0, targeted=True)
    members = [BehaviorPredictor(PredictorConfig(family=family, hidden=8, layers=layers,
                                                 epochs=1, device="cpu", seed=0, member=m,
                                                 num_threads=1)).fit(
        panel, ["none", "a1"], users, progress=False) for m in range(3)]
    fast, slow = PredictorEnsemble(members), PredictorEnsemble(members)
    slow.shared_state = False
    assert fast.shared_state
    rng = np.random.default_rng(0)
    n = 50
    sf, ss = fast.initial_state(n), slow.initial_state(n)
    for _ in range(4):
        mf, ms = fast.member_predictions(sf), slow.member_predictions(ss)
        for a, b in zip(mf, ms, strict=True):
            np.testing.assert_allclose(a.p_visit, b.p_visit, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(a.revenue_mu, b.revenue_mu, rtol=1e-5, atol=1e-5)
        pf = fast.predict_from_state(sf, np.random.default_rng(5))
        ps = slow.predict_from_state(ss, np.random.default_rng(5))
        np.testing.assert_allclose(pf.p_purchase, ps.p_purchase, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fast.last_disagreement_, slow.last_disagreement_,
                                   rtol=1e-4, atol=1e-6)
        raw = np.zeros((n, 7), np.float32)
        raw[:, 0] = rng.random(n) < 0.5
        raw[:, 3] = (raw[:, 0] > 0) & (rng.random(n) < 0.3)
        raw[:, 6] = raw[:, 3] * 20.0
        act = rng.integers(-1, 2, n)
        sf, ss = fast.step(sf, raw, act), slow.step(ss, raw, act)
    # the members really differ, so the comparison is not trivial
    assert not np.allclose(mf[0].p_visit, mf[1].p_visit)


def test_recurrent_members_keep_their_own_states() -> None:
    panel, users = toy_panel(n_users=60, n_periods=4, seed=0)
    members = [BehaviorPredictor(PredictorConfig(family="gru", hidden=4, epochs=1,
                                                 device="cpu", member=m, num_threads=1)).fit(
        panel, ["none", "a1"], users, progress=False) for m in range(2)]
    ens = PredictorEnsemble(members)
    assert not ens.shared_state
    # the output-based selection equals picking each member's own predictions
    state = ens.initial_state(3)
    own = [m.predict_from_state(s) for m, s in zip(members, ens._split(state), strict=True)]
    pick = np.random.default_rng(1).integers(0, 2, 3)
    got = ens.predict_from_state(state, np.random.default_rng(1))
    want = np.stack([p.p_visit for p in own])[pick, np.arange(3)]
    np.testing.assert_allclose(got.p_visit, want, rtol=1e-6)
    assert len(ens.initial_state(3)) == 2 * len(members[0].initial_state(3))
