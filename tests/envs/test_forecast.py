"""Customer forecasts in the learned shop: columns, probabilities, seeding, intervals, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs.forecast import ForecastConfig, forecast_customers, wilson_interval
from envs.shop_env import load_learned_shop
from predictors import build_panel, open_dataset

COLUMNS = ["user_id"] + [f"{p}{s}" for p in ("expected_purchases", "expected_revenue")
                         for s in ("", "_ci_low", "_ci_high")] + \
    [f"{p}_pi_{s}" for p in ("purchases", "revenue") for s in ("low", "high")] + \
    [f"{p}{s}" for p in ("p_any_purchase", "p_active_end") for s in ("", "_ci_low", "_ci_high")]


@pytest.fixture(scope="module")
def shop(tiny_run):
    data, pred = tiny_run
    return load_learned_shop(pred, data, start_users="all",
                             panel=build_panel(open_dataset(data)))


def test_forecast_columns_probabilities_and_intervals(shop, one_torch_thread) -> None:
    cfg = ForecastConfig(periods=4, replicates=24, active_window=2, seed=3)
    fc = forecast_customers(shop, None, cfg)
    c = fc.customers
    assert sorted(c.columns) == sorted(COLUMNS)
    assert len(c) == len(shop.starts)
    assert (c["user_id"].to_numpy() == shop.starts.user_ids).all()
    for p in ("p_any_purchase", "p_active_end"):
        assert c[p].between(0, 1).all()
        assert (c[f"{p}_ci_low"] <= c[p]).all() and (c[p] <= c[f"{p}_ci_high"]).all()
        assert c[f"{p}_ci_low"].ge(0).all() and c[f"{p}_ci_high"].le(1).all()
    for name, pi in (("purchases", "purchases"), ("revenue", "revenue")):
        m = c[f"expected_{name}"]
        assert (c[f"expected_{name}_ci_low"] <= m + 1e-12).all()
        assert (m <= c[f"expected_{name}_ci_high"] + 1e-12).all()
        assert (c[f"{pi}_pi_low"] <= m).all() and (m <= c[f"{pi}_pi_high"]).all()
    assert c["expected_purchases"].between(0, cfg.periods).all()
    # P(any) <= E[purchase periods] (in expectation; the two are estimated on other paths)
    assert c["p_any_purchase"].sum() <= c["expected_purchases"].sum()
    assert (c["p_any_purchase"] > 0).any() and (c["expected_revenue"] > 0).any()
    # the per-customer estimates add up to the base's curve
    curve = fc.curve
    assert list(curve["step"]) == [1, 2, 3, 4]
    assert curve["period"].iloc[0] == shop.starts.period
    cum = curve["cumulative_expected_purchases"].to_numpy()
    assert np.all(np.diff(cum) >= 0)
    assert cum[-1] == pytest.approx(fc.expected.sum(1).mean())
    assert cum[-1] == pytest.approx(c["expected_purchases"].sum())
    assert (curve["cumulative_pi_low"] <= cum).all() and (cum <= curve["cumulative_pi_high"]).all()
    assert fc.summary["totals"]["purchases"]["expected"] == pytest.approx(cum[-1])
    assert "replicates" in fc.summary["intervals"]["*_ci_low/*_ci_high"]


def test_sampled_estimator_counts_the_draws(shop, one_torch_thread) -> None:
    cfg = ForecastConfig(periods=3, replicates=10, active_window=0, seed=3, estimator="sampled")
    fc = forecast_customers(shop, None, cfg)
    c = fc.customers
    # a customer with any purchase in a replicate has >= 1 purchase period there
    assert (c["p_any_purchase"] <= c["expected_purchases"] + 1e-12).all()
    assert np.allclose(c["p_any_purchase"] * 10, np.round(c["p_any_purchase"] * 10))
    assert np.array_equal(fc.expected, fc.purchases)
    assert fc.curve["cumulative_expected_purchases"].iloc[-1] == pytest.approx(
        fc.purchases.sum(1).mean())
    # the drawn paths are those of the default estimator (its own stream for the free paths)
    rb = forecast_customers(shop, None, ForecastConfig(periods=3, replicates=10,
                                                       active_window=0, seed=3))
    assert np.array_equal(rb.purchases, fc.purchases)
    assert not np.array_equal(rb.expected, fc.expected)
    with pytest.raises(ValueError, match="estimator"):
        ForecastConfig(estimator="counted")


def test_rao_blackwell_agrees_with_the_draws_in_expectation(shop, one_torch_thread) -> None:
    """Both estimators are unbiased for the same quantities: with many replicates the
    per-customer estimates agree within their Monte-Carlo error, and the Rao-Blackwellised
    ones are less noisy."""
    r = 300
    kw = {"periods": 3, "replicates": r, "active_window": 0, "seed": 5}
    rb = forecast_customers(shop, None, ForecastConfig(**kw))
    sp = forecast_customers(shop, None, ForecastConfig(**kw, estimator="sampled"))
    for a, b in ((rb.p_any, sp.p_any), (rb.expected, sp.expected)):
        # the draws' variance floored by its plug-in bound (p(1-p) <= p; a count's ~ its
        # mean), so that a customer with no drawn purchase does not get a zero error
        var_b = np.maximum(b.var(0, ddof=1), a.mean(0))
        se = np.sqrt(a.var(0, ddof=1) / r + var_b / r) + 1e-9
        z = (a.mean(0) - b.mean(0)) / se
        assert np.mean(np.abs(z) > 3) < 0.02  # ~0.3 % expected under unbiasedness
        assert abs((a.mean(0) - b.mean(0)).sum()) < 3 * np.sqrt((se ** 2).sum())
        assert a.var(0).mean() < b.var(0).mean()
    assert rb.p_any.min() > 0 and rb.p_any.max() < 1  # probabilities, not 0/1 draws


def test_forecast_is_seeded(shop, one_torch_thread) -> None:
    cfg = ForecastConfig(periods=3, replicates=6, active_window=0, seed=1)
    a = forecast_customers(shop, None, cfg)
    b = forecast_customers(shop, None, cfg)
    pd.testing.assert_frame_equal(a.customers, b.customers)
    other = forecast_customers(shop, None, ForecastConfig(periods=3, replicates=6,
                                                          active_window=0, seed=2))
    assert not np.array_equal(a.purchases, other.purchases)
    assert "p_active_end" not in a.customers


def test_forecast_policy_and_config_checks(shop, one_torch_thread) -> None:
    """A policy function is used (an always-none function equals the default)."""
    none = shop.simulator.none_index
    cfg = ForecastConfig(periods=2, replicates=4, active_window=1, seed=0)
    by_fn = forecast_customers(shop, lambda o, m, r: np.full(len(o), none), cfg)
    default = forecast_customers(shop, None, cfg)
    assert np.array_equal(by_fn.purchases, default.purchases)
    for bad in ({"periods": 0}, {"replicates": 1}, {"active_window": -1}, {"alpha": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ForecastConfig(**bad)


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(np.array([5]), 10)
    assert lo[0] == pytest.approx(0.2366, abs=1e-4) and hi[0] == pytest.approx(0.7634, abs=1e-4)


def test_forecast_cli_writes_files(tiny_run, tmp_path: Path) -> None:
    from agents.cli import run_main

    data, pred = tiny_run
    out = tmp_path / "fc"
    rc = run_main(["forecast", "--predictor", str(pred), "--data", str(data), "--periods", "3",
                   "--replicates", "5", "--active-window", "2", "--policy", "rule:always:email",
                   "--seed", "4", "--out", str(out)])
    assert rc == 0
    customers = pd.read_csv(out / "customers.csv")
    assert sorted(customers.columns) == sorted(COLUMNS)
    summary = json.loads((out / "forecast.json").read_text())
    assert summary["policy"] == "rule:always:email" and summary["n_customers"] == len(customers)
    curve = pd.read_csv(out / "curve.csv")
    assert len(curve) == 3 and summary["curve"]["step"] == [1, 2, 3]
    assert json.loads((out / "config.json").read_text())["command"] == "forecast"
