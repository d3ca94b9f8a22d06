"""An orders-only log (no visits, no interventions) gives a simulator that works.

Purchase is the observed activity (no impossible visit gate), and a period without a logged
send is fed to the predictor as ``none`` both in training and in simulation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs.fidelity import not_informed, replay_fidelity
from envs.shop_env import load_learned_shop
from predictors import ActionSpec, DatasetSpec, build_panel, open_dataset, write_dataset
from predictors.models import BehaviorPredictor, PredictorConfig
from predictors.models.sequence import panel_to_tensors

SPEC = DatasetSpec(actions=(ActionSpec("none", 0.0, "none"),), period="7D",
                   origin="2025-01-06T00:00:00+00:00")


@pytest.fixture(scope="module")
def orders_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An orders-only dataset (30% of user-weeks buy) and a 2-epoch GRU on it."""
    root = tmp_path_factory.mktemp("orders")
    rng = np.random.default_rng(0)
    n_users, n_weeks = 150, 12
    u, w = np.nonzero(rng.random((n_users, n_weeks)) < 0.3)
    t = (pd.Timestamp("2025-01-06", tz="UTC") + pd.to_timedelta(w * 7, unit="D")
         + pd.to_timedelta(rng.integers(0, 6 * 86400, len(u)), unit="s"))
    events = pd.DataFrame({"user_id": u, "timestamp": t, "event_type": "purchase",
                           "revenue": rng.lognormal(3, 0.4, len(u))})
    write_dataset(root / "data", SPEC, events)
    panel = build_panel(open_dataset(root / "data"))
    pred = BehaviorPredictor(PredictorConfig(family="gru", epochs=2, hidden=8, history=4,
                                             device="cpu", seed=0))
    pred.fit(panel, SPEC.action_names, progress=False)
    pred.save(root / "pred")
    return root / "data", root / "pred"


def test_predictor_marks_purchase_as_the_activity(orders_run) -> None:
    data, pred_dir = orders_run
    pred = BehaviorPredictor.load(pred_dir)
    assert pred.activity_ == "purchase"  # saved and loaded
    panel = build_panel(open_dataset(data))
    _, p = pred.predict(panel)
    assert p.activity == "purchase"
    assert p.p_visit.mean() < 0.05 < p.p_purchase.mean()  # the visit head saw no visit
    out = p.sample(np.zeros(len(p.p_purchase), np.int64), np.random.default_rng(0))
    assert not out["visit"].any()
    # purchases drawn at the predicted rate, not gated by the (near-zero) visit head
    assert out["purchase"].mean() == pytest.approx(p.p_purchase[:, 0].mean(), abs=0.03)


def test_simulated_orders_shop_is_not_dead(orders_run) -> None:
    data, pred = orders_run
    panel = build_panel(open_dataset(data))
    last = int(panel["period"].max())
    shop = load_learned_shop(pred, data, start_period=last + 1 - 4, start_users="all",
                             panel=panel)
    rep = replay_fidelity(shop, panel, horizon=4, replicates=2, seed=0)
    s = rep["summary"]
    assert rep["activity"] == "purchase"
    assert s["purchase_rate"]["sim"] > 0.1 and s["revenue_per_user_period"]["sim"] > 1.0
    assert abs(s["purchase_rate"]["rel_error"]) < 0.5
    assert rep["per_period"]["survival"]["sim"][0] > 0.1  # counted on purchases
    notes = " | ".join(rep["not_informed"])
    assert "no visit events: visits are not modelled" in notes
    assert "no interventions logged" in notes


def test_unlogged_periods_are_fed_as_none_in_training_and_simulation(orders_run) -> None:
    data, pred_dir = orders_run
    panel = build_panel(open_dataset(data))
    assert (panel["action_index"] == -1).all()  # nothing logged
    tensors = panel_to_tensors(panel, 1, none_index=0)
    assert (tensors.action[tensors.valid] == 0).all()  # fed as none, as the simulator does
    pred = BehaviorPredictor.load(pred_dir)
    raw = np.zeros((3, 7), np.float32)
    raw[:, 3] = 1
    raw[:, 6] = 30.0
    s0 = pred.initial_state(3)
    a = pred.predict_from_state(pred.step(s0, raw, np.full(3, -1)))
    b = pred.predict_from_state(pred.step(s0, raw, np.zeros(3, np.int64)))
    assert np.allclose(a.p_purchase, b.p_purchase)


def test_not_informed_lists_missing_behaviours() -> None:
    spec = DatasetSpec(actions=(ActionSpec("none", 0.0, "none"),
                                ActionSpec("email", 0.1, channel="email"),
                                ActionSpec("push", 0.1, channel="push")), has_prices=False)
    panel = pd.DataFrame({"visits": [1, 0], "views": [1, 0], "carts": [0, 1], "favs": [0, 0],
                          "unsubscribes": [0, 0], "purchases": [0, 1],
                          "action_index": [0, 1]})
    notes = not_informed(panel, spec)
    assert notes == ["no favs events: these inputs are never informed",
                     "actions never logged: push (their effect is not informed by the data)",
                     "no unsubscribe events: unsubscribes are not modelled",
                     "no order values: revenue is not informed"]
