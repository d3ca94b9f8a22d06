"""The Rao-Blackwellised forecast: purchase-free paths, exactness on an orders log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from envs.forecast import ForecastConfig, forecast_customers
from envs.shop_env import load_learned_shop
from predictors import ActionSpec, DatasetSpec, build_panel, open_dataset, write_dataset
from predictors.models import BehaviorPredictor, PredictorConfig

SPEC = DatasetSpec(actions=(ActionSpec("none", 0.0, "none"),), period="7D",
                   origin="2025-01-06T00:00:00+00:00")


@pytest.fixture(scope="module")
def orders_shop(tmp_path_factory: pytest.TempPathFactory):
    """A learned shop on an orders log (purchases only, no visits, no sends)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("orders")
    rng = np.random.default_rng(0)
    n, weeks = 120, 12
    rate = rng.gamma(1.0, 0.4, n)
    buy = rng.random((n, weeks)) < np.minimum(rate, 0.9)[:, None]
    buy[:, 0] = True  # everyone starts with a purchase
    u, w = np.nonzero(buy)
    t = (pd.Timestamp("2025-01-06", tz="UTC") + pd.to_timedelta(w * 7, unit="D")
         + pd.to_timedelta(rng.integers(0, 6 * 86400, len(u)), unit="s"))
    events = pd.DataFrame({"user_id": u, "timestamp": t, "event_type": "purchase",
                           "revenue": rng.lognormal(3, 0.4, len(u)).round(2)})
    data = write_dataset(root / "data", SPEC, events)
    panel = build_panel(open_dataset(data))
    pred = BehaviorPredictor(PredictorConfig(family="logistic", epochs=3, hidden=8,
                                             seed=0)).fit(panel, ("none",), progress=False)
    yield load_learned_shop(pred, data, start_users="all", panel=panel)
    torch.set_num_threads(old)


def test_orders_log_probability_is_exact(orders_shop) -> None:
    """Only the purchase is random on an orders log with no sends: every purchase-free path is
    the same, so P(any purchase) is exact after one replicate and equals 1 - prod(1 - p_t)
    along the history of no purchases."""
    shop, h = orders_shop, 5
    assert shop.simulator.predictor.activity_ == "purchase"
    fc = forecast_customers(shop, None, ForecastConfig(periods=h, replicates=6,
                                                       active_window=0, seed=2))
    assert np.allclose(fc.p_any, fc.p_any[:1])  # no Monte-Carlo noise left
    c = fc.customers
    assert np.allclose(c["p_any_purchase_ci_low"], c["p_any_purchase"])
    assert np.allclose(c["p_any_purchase_ci_high"], c["p_any_purchase"])
    # by hand: observe h periods without a purchase, reading each period's probability
    sim, pred = shop.simulator.clone(), shop.simulator.predictor
    n = len(shop.starts)
    sim.load(shop.starts, np.arange(n))
    stay = np.ones(n)
    for _ in range(h):
        stay *= 1.0 - pred.predict_from_state(sim.state).p_purchase[:, 0]
        sim.observe(np.zeros(n, np.int64), np.zeros((n, 7), np.float32))
    assert np.allclose(c["p_any_purchase"], 1.0 - stay)
    # ... and the drawn paths agree in expectation (a loose check of the same quantity)
    many = forecast_customers(shop, None, ForecastConfig(periods=h, replicates=200,
                                                         active_window=0, seed=2,
                                                         estimator="sampled"))
    gap = many.customers["p_any_purchase"] - c["p_any_purchase"]
    assert abs(gap.mean()) < 3 * np.sqrt((c["p_any_purchase"] * (1 - c["p_any_purchase"])
                                          ).sum() / 200) / n + 1e-9


def test_step_given_no_purchase_draws_none_and_reports_the_probability(tiny_run) -> None:
    data, pred_dir = tiny_run
    shop = load_learned_shop(pred_dir, data, start_users="all",
                             panel=build_panel(open_dataset(data)))
    sim = shop.simulator.clone()
    src = np.repeat(np.arange(len(shop.starts)), 40)
    sim.load(shop.starts, src)
    p = sim.predictor.predict_from_state(sim.state)
    a = np.full(len(src), sim.none_index)
    r = np.arange(len(src))
    pv, pp = p.p_visit[r, a], np.minimum(p.p_purchase[r, a], p.p_visit[r, a])
    out = sim.step(a, np.random.default_rng(0), no_purchase=True)
    assert not out["purchase"].any() and (out["revenue"] == 0).all()
    assert np.allclose(out["p_purchase"], pp)
    # visits at the rate given no purchase, (p_visit - p) / (1 - p)
    want = ((pv - pp) / (1 - pp)).sum()
    assert abs(out["visit"].sum() - want) < 4 * np.sqrt(want)
    free = shop.simulator.clone()
    free.load(shop.starts, src)
    drawn = free.step(a, np.random.default_rng(0))
    assert np.allclose(drawn["p_purchase"], pp) and drawn["purchase"].any()
