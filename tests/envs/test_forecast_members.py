"""Forecasts averaged over several fitted models (the members of an ensemble)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs.forecast import ForecastConfig, forecast_customers
from envs.shop_env import load_learned_shop
from predictors import build_panel, load_users, open_dataset
from predictors.models import BehaviorPredictor, PredictorConfig, PredictorEnsemble

CFG = ForecastConfig(periods=3, replicates=4, active_window=2, seed=5)


@pytest.fixture(scope="module")
def members(tiny_run, tmp_path_factory: pytest.TempPathFactory):
    """(dataset folder, saved 2-member ensemble folder, the members' shops, panel)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    data, _ = tiny_run
    ds = open_dataset(data)
    panel = build_panel(ds)
    preds = [BehaviorPredictor(PredictorConfig(family="logistic", epochs=1, hidden=8, seed=0,
                                               member=k)).fit(
        panel, ds.spec.action_names, users=load_users(ds), progress=False) for k in range(2)]
    folder = PredictorEnsemble(preds).save(tmp_path_factory.mktemp("ens") / "ens")
    shops = [load_learned_shop(p, data, start_users="all", panel=panel) for p in preds]
    yield data, folder, shops, panel
    torch.set_num_threads(old)


def test_two_models_average_their_own_forecasts(members) -> None:
    _, _, shops, _ = members
    both = forecast_customers(shops, None, CFG)
    one = [forecast_customers(s, None, CFG) for s in shops]
    c, c0, c1 = both.customers, one[0].customers, one[1].customers
    assert not np.allclose(c0["expected_purchases"], c1["expected_purchases"])
    for col in ("expected_purchases", "expected_revenue", "p_any_purchase", "p_active_end"):
        assert np.allclose(c[col], (c0[col] + c1[col]) / 2), col
    assert np.allclose(both.curve["cumulative_expected_purchases"],
                       (one[0].curve["cumulative_expected_purchases"]
                        + one[1].curve["cumulative_expected_purchases"]) / 2)
    # the paths are pooled model by model; the intervals are the mixture's
    assert both.expected.shape == (2 * CFG.replicates, len(shops[0].starts))
    assert np.array_equal(both.expected[CFG.replicates:], one[1].expected)
    assert (c["purchases_pi_high"] >= np.minimum(c0["purchases_pi_high"],
                                                 c1["purchases_pi_high"])).all()
    assert both.summary["models"] == 2 and one[0].summary["models"] == 1
    assert "8 replicates" in both.summary["intervals"]["*_ci_low/*_ci_high"]
    again = forecast_customers(shops, None, CFG)
    pd.testing.assert_frame_equal(again.customers, c)


def test_models_must_forecast_the_same_customers(members) -> None:
    data, _, shops, panel = members
    test_only = load_learned_shop(shops[1].simulator.predictor, data, start_users="test",
                                  panel=panel)
    with pytest.raises(ValueError, match="same customers"):
        forecast_customers([shops[0], test_only], None, CFG)
    with pytest.raises(ValueError, match="at least one"):
        forecast_customers([], None, CFG)


def test_cli_averages_an_ensemble_run(members, tmp_path: Path) -> None:
    from agents.cli import run_main

    data, folder, shops, _ = members
    args = ["forecast", "--predictor", str(folder), "--data", str(data), "--periods", "3",
            "--replicates", "4", "--active-window", "2", "--seed", "5", "--no-progress"]
    assert run_main(args + ["--out", str(tmp_path / "avg")]) == 0
    got = pd.read_csv(tmp_path / "avg" / "customers.csv")
    want = forecast_customers(shops, None, CFG).customers
    assert np.allclose(got["expected_purchases"], want["expected_purchases"])
    assert np.allclose(got["p_any_purchase"], want["p_any_purchase"])
    summary = json.loads((tmp_path / "avg" / "forecast.json").read_text())
    assert summary["models"] == 2 and summary["ensemble"] == "average"
    # draw: one shop whose ensemble draws a member per user-step
    assert run_main(args + ["--ensemble", "draw", "--out", str(tmp_path / "draw")]) == 0
    summary = json.loads((tmp_path / "draw" / "forecast.json").read_text())
    assert summary["models"] == 1 and summary["ensemble"] == "draw"
    assert run_main(args + ["--ensemble", "vote", "--out", str(tmp_path / "bad")]) != 0
