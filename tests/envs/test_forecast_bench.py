"""The forecast benchmark: calibration / holdout split, the same customers for every method."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import shared_file  # noqa: E402

from envs.forecast_bench import ForecastBenchConfig, forecast_bench, forecast_metrics
from predictors import ActionSpec, ConfigError, DatasetSpec, write_dataset

pytest.importorskip("lifetimes")

SPEC = DatasetSpec(actions=(ActionSpec("none", 0.0, "none"),), period="7D",
                   origin="2025-01-06T00:00:00+00:00")


def _orders(folder: Path, n_users: int = 300, n_weeks: int = 24, seed: int = 0) -> pd.DataFrame:
    """Customers arriving over time, buying at gamma-distributed weekly rates, each dropping
    out for good after a purchase week with probability 0.25 (buy till you die)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.0, 0.35, n_users)
    first = rng.integers(0, 14, n_users)
    buy = np.zeros((n_users, n_weeks), bool)
    for i in range(n_users):
        for w in range(first[i], n_weeks):
            buy[i, w] = w == first[i] or rng.random() < rate[i]
            if buy[i, w] and rng.random() < 0.25:
                break
    u, w = np.nonzero(buy)
    t = (pd.Timestamp("2025-01-06", tz="UTC") + pd.to_timedelta(w * 7, unit="D")
         + pd.to_timedelta(rng.integers(0, 6 * 86400, len(u)), unit="s"))
    events = pd.DataFrame({"user_id": u, "timestamp": t, "event_type": "purchase",
                           "revenue": rng.lognormal(3, 0.4, len(u)).round(2)})
    write_dataset(folder, SPEC, events)
    return events.assign(week=w)


def test_bench_scores_every_method_on_the_same_customers(tmp_path: Path,
                                                         one_torch_thread) -> None:
    events = _orders(tmp_path / "data")
    cfg = ForecastBenchConfig(calibration_periods=16, holdout_periods=6, families=("logistic",),
                              baselines=("bgnbd",),
                              replicates=4, epochs=1, hidden=8, n_boot=20)
    res = forecast_bench(tmp_path / "data", cfg)
    customers = events.loc[events["week"] < 16, "user_id"].unique()
    hold = events[(events["week"] >= 16) & (events["week"] < 22)
                  & events["user_id"].isin(customers)]
    assert res["n_customers"] == len(customers)
    assert res["calibration"] == [0, 15] and res["holdout"] == [16, 21]
    # a purchase is a (customer, week) with at least one purchase
    assert res["actual"]["total"] == len(hold[["user_id", "week"]].drop_duplicates())
    assert len(res["actual"]["curve"]) == 6
    assert set(res["methods"]) == {"logistic", "bgnbd"}
    for name, m in res["methods"].items():
        assert 0 <= m["auc"] <= 1 and m["rmse"] >= m["mae"] >= 0, name
        assert m["mean_actual"] == pytest.approx(res["actual"]["total"] / len(customers))
        assert len(res["curves"][name]) == 6
        assert res["curves"][name][-1] == pytest.approx(m["mean_expected"] * len(customers))
    assert set(res["vs_bgnbd"]) == {"logistic"}
    d = res["vs_bgnbd"]["logistic"]["rmse"]
    assert d["low"] <= d["mean"] <= d["high"]
    assert res["best_family_by_rmse"] == "logistic"


def test_bench_checks_the_split(tmp_path: Path) -> None:
    _orders(tmp_path / "data")
    with pytest.raises(ConfigError, match="exceeds the 24 periods"):
        forecast_bench(tmp_path / "data", ForecastBenchConfig(
            calibration_periods=20, holdout_periods=5, families=()))
    with pytest.raises(ConfigError, match="baselines"):
        ForecastBenchConfig(baselines=("bgnb",))


def test_forecast_metrics_known_answer() -> None:
    m = forecast_metrics(np.array([0, 1, 3]), np.array([1.0, 1.0, 1.0]),
                         np.array([0.1, 0.5, 0.9]), np.array([2.0, 4.0]), np.array([1.0, 3.0]))
    assert m["rmse"] == pytest.approx(np.sqrt(5 / 3)) and m["mae"] == pytest.approx(1.0)
    assert m["auc"] == 1.0 and m["total_error"] == pytest.approx(-0.25)
    assert m["curve_mape"] == pytest.approx((0.5 + 0.25) / 2)


@pytest.mark.shared_data
def test_bench_on_an_online_retail_slice(tmp_path: Path, one_torch_thread) -> None:
    src = shared_file("online_retail/online_retail.csv.gz")
    from agents.cli import run_main

    raw = pd.read_csv(src, dtype={"InvoiceNo": str, "StockCode": str})
    keep = np.sort(raw["CustomerID"].dropna().unique())[:150]
    (tmp_path / "or").mkdir()
    raw[raw["CustomerID"].isin(keep)].to_csv(tmp_path / "or" / "online_retail.csv.gz",
                                             index=False)
    rc = run_main(["bench", "forecast", "--data", str(tmp_path / "or"), "--families",
                   "logistic", "--epochs", "1", "--hidden", "8", "--replicates", "4",
                   "--n-boot", "20", "--out", str(tmp_path / "b")])
    assert rc == 0
    res = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert res["calibration"] == [0, 38] and res["holdout"] == [39, 52]
    assert 0 < res["n_customers"] <= 150
    assert set(res["methods"]) == {"logistic", "bgnbd", "pareto_nbd"}
    assert all(np.isfinite(m["rmse"]) for m in res["methods"].values())


def test_bench_members_average_the_fits(tmp_path: Path, one_torch_thread) -> None:
    _orders(tmp_path / "data", n_users=150, n_weeks=20)
    cfg = ForecastBenchConfig(calibration_periods=14, holdout_periods=4, families=("logistic",),
                              baselines=("bgnbd",), replicates=3, epochs=1, hidden=8,
                              n_boot=10, members=2)
    res = forecast_bench(tmp_path / "data", cfg)
    rows = res["methods"]
    assert set(rows) == {"logistic", "logistic#0", "logistic#1", "bgnbd"}
    assert set(res["vs_bgnbd"]) == {"logistic", "logistic#0", "logistic#1"}
    assert res["best_family_by_rmse"] == "logistic"
    assert rows["logistic"]["members"] == 2 and len(rows["logistic"]["best_epoch"]) == 2
    assert rows["logistic"]["best_val_loss"] == [m["best_val_loss"] for m in
                                                 (rows["logistic#0"], rows["logistic#1"])]
    assert np.isfinite(rows["logistic#0"]["best_val_loss"])
    # the fits differ (seeded members), and the row is their average
    m0, m1, avg = rows["logistic#0"], rows["logistic#1"], rows["logistic"]
    assert m0["mean_expected"] != m1["mean_expected"]
    assert avg["mean_expected"] == pytest.approx((m0["mean_expected"] + m1["mean_expected"]) / 2)
    assert avg["total_error"] == pytest.approx((m0["total_error"] + m1["total_error"]) / 2)
    assert res["curves"]["logistic"] == pytest.approx(
        list((np.array(res["curves"]["logistic#0"]) + res["curves"]["logistic#1"]) / 2))
    # member 0 is the single fit
    one = forecast_bench(tmp_path / "data", ForecastBenchConfig(**{**cfg.to_dict(),
                                                                   "members": 1}))
    assert one["methods"]["logistic"]["rmse"] == pytest.approx(m0["rmse"])
    with pytest.raises(ValueError, match="members"):
        ForecastBenchConfig(members=0)
