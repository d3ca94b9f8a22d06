"""Tests of predictors.models.uplift and predictors.models.realdata (real-data predictor checks)."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import shared_file  # noqa: E402

from predictors.errors import ConfigError
from predictors.importers import import_hillstrom, import_taobao
from predictors.models import BehaviorPredictor, PredictorConfig, toy_panel
from predictors.models.realdata import (
    RealDataConfig,
    difference_in_means,
    hillstrom_check,
    next_period_check,
    paired_auc_bootstrap,
)
from predictors.models.train import split_users
from predictors.models.uplift import TwoModelLogistic, fit_logistic, qini_coefficient, qini_curve


def uplift_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Randomized binary test whose effect is +0.3 for x > 0 and 0 otherwise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    t = rng.random(n) < 0.5
    true_uplift = 0.3 * (x[:, 0] > 0)
    y = (rng.random(n) < 0.1 + true_uplift * t).astype(float)
    return x, y, t, true_uplift


# ---------------------------------------------------------------- Qini
def test_qini_curve_end_point_is_the_scaled_difference() -> None:
    _, y, t, u = uplift_data(500, 0)
    k, q = qini_curve(u, y, t)
    assert k[0] == 0 and k[-1] == len(y) and q[0] == 0.0
    expected = y[t].sum() - y[~t].sum() * t.sum() / (~t).sum()
    assert q[-1] == pytest.approx(expected)


def test_qini_perfect_reversed_constant_and_random() -> None:
    _, y, t, _ = uplift_data(20000, 1)
    perfect = np.where(t, y, -y).astype(float)
    assert qini_coefficient(perfect, y, t) == pytest.approx(1.0)
    assert qini_coefficient(-perfect, y, t) < 0
    assert qini_coefficient(np.zeros(len(y)), y, t) == pytest.approx(0.0, abs=1e-12)
    noise = np.random.default_rng(2).random(len(y))
    assert abs(qini_coefficient(noise, y, t)) < 0.05


def test_qini_true_uplift_beats_random_and_ignores_order_within_ties() -> None:
    _, y, t, u = uplift_data(20000, 3)
    q = qini_coefficient(u, y, t)
    assert q > 0.1
    perm = np.random.default_rng(4).permutation(len(y))
    assert qini_coefficient(u[perm], y[perm], t[perm]) == pytest.approx(q, rel=1e-12)


@pytest.mark.parametrize(("args", "match"), [
    ((np.zeros(3), np.zeros(3), np.ones(3)), "both treated and control"),
    ((np.zeros(3), np.zeros(2), np.array([0, 1, 1])), "one length"),
    ((np.array([0.0, np.nan, 1.0]), np.zeros(3), np.array([0, 1, 1])), "finite"),
    ((np.zeros(3), np.zeros(3), np.array([0, 2, 1])), "0/1"),
])
def test_qini_invalid_input(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        qini_coefficient(*args)


# ---------------------------------------------------------------- logistic baselines
def test_fit_logistic_recovers_coefficients() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30000, 2))
    w = np.array([-1.0, 0.8, -0.5])
    y = rng.random(len(x)) < 1 / (1 + np.exp(-(w[0] + x @ w[1:])))
    np.testing.assert_allclose(fit_logistic(x, y, l2=0.0), w, atol=0.06)


def test_two_model_logistic_ranks_the_true_uplift() -> None:
    x, y, t, _ = uplift_data(8000, 6)
    xt, yt, tt, ut = uplift_data(8000, 7)
    m = TwoModelLogistic().fit(x, y, t)
    pred = m.predict_uplift(xt)
    assert np.corrcoef(pred, ut)[0, 1] > 0.7
    assert qini_coefficient(pred, yt, tt) > 0.5 * qini_coefficient(ut, yt, tt)
    with pytest.raises(ConfigError, match="not fitted"):
        TwoModelLogistic().predict_uplift(xt)


# ---------------------------------------------------------------- measured effects
def test_difference_in_means_interval_covers_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(8)
    hits = 0
    for _ in range(400):
        t = rng.random(400) < 0.5
        y = rng.random(400) < 0.2 + 0.1 * t
        hits += difference_in_means(y.astype(float), t).contains(0.1)
    assert 0.91 <= hits / 400 <= 0.985


def test_difference_in_means_known_answer_and_errors() -> None:
    y = np.array([3.0, 5.0, 1.0, 1.0, 2.0, 3.0])
    t = np.array([1, 1, 1, 0, 0, 0])
    e = difference_in_means(y, t, alpha=0.05)
    se = np.sqrt(np.var([3, 5, 1], ddof=1) / 3 + np.var([1, 2, 3], ddof=1) / 3)
    assert e.mean == pytest.approx(1.0)
    assert e.high - e.mean == pytest.approx(1.959964 * se, rel=1e-5)
    with pytest.raises(ValueError, match=">= 2 units"):
        difference_in_means(np.ones(3), np.array([1, 0, 0]))


def test_paired_auc_bootstrap_same_and_better_predictor() -> None:
    rng = np.random.default_rng(9)
    users = np.repeat(np.arange(300), 5)
    y = rng.random(len(users)) < 0.3
    noise = rng.random(len(users))
    same = paired_auc_bootstrap(users, y, noise, noise, n_boot=50)
    assert same == {"mean": 0.0, "low": 0.0, "high": 0.0}
    better = paired_auc_bootstrap(users, y, y + noise, noise, n_boot=50, seed=1)
    assert better["low"] > 0.2 and better["low"] <= better["mean"] <= better["high"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"families": ()}, "at least one"),
    ({"families": ("nope",)}, "families"),
    ({"alpha": 1.0}, "alpha"),
    ({"val_fraction": 0.6}, "val_fraction"),
    ({"epochs": 0}, "epochs"),
    ({"batch_users": 0}, "batch_users"),
    ({"n_boot": -2}, "n_boot"),
])
def test_config_invalid(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RealDataConfig(**kwargs)


def test_recurrent_families_fit_a_one_period_panel() -> None:
    panel, users = toy_panel(n_users=30, n_periods=1, seed=0)
    for fam in ("gru", "lstm"):
        pred = BehaviorPredictor(PredictorConfig(family=fam, epochs=1, hidden=4, device="cpu"))
        pred.fit(panel, ["none", "a1"], users, progress=False)
        _, out = pred.predict(panel, users)
        assert out.p_visit.shape == (len(panel), 2) and np.isfinite(out.p_visit).all()


# ---------------------------------------------------------------- real data (subsamples)
def hillstrom_subsample(tmp: Path, n: int = 3000) -> Path:
    src = shared_file("hillstrom/hillstrom.csv")
    sub = tmp / "hillstrom" / "hillstrom.csv"
    sub.parent.mkdir(parents=True, exist_ok=True)
    pd.read_csv(src, nrows=n).to_csv(sub, index=False)
    return sub


@pytest.mark.shared_data
def test_hillstrom_check_against_the_csv(tmp_path: Path) -> None:
    src = hillstrom_subsample(tmp_path, 1200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = import_hillstrom(src, tmp_path / "ds")
        cfg = RealDataConfig(families=("logistic",), epochs=1, hidden=4, batch_users=256,
                             n_boot=10)
        rep = hillstrom_check(folder, cfg)
    assert rep["n_test"] == 600
    # Independent path: the predictor splits users in sorted id order (user_id = 1-based row
    # number of the CSV); the measured effects are plain differences of the CSV's arm means.
    raw = pd.read_csv(src)
    split = split_users(len(raw), cfg.val_fraction, 0.5, cfg.seed)
    t = raw[split == "test"]
    fam = rep["families"]["logistic"]
    for email, seg in (("mens_email", "Mens E-Mail"), ("womens_email", "Womens E-Mail")):
        m = rep["measured"][email]
        for o in ("visit", "conversion", "spend"):
            want = (t.loc[t["segment"] == seg, o].mean()
                    - t.loc[t["segment"] == "No E-Mail", o].mean())
            assert m[o]["mean"] == pytest.approx(want, abs=1e-12)
            assert m[o]["n_treated"] == (t["segment"] == seg).sum()
            assert m[o]["low"] < m[o]["mean"] < m[o]["high"]
            pred = fam["effects"][email][o]
            assert np.isfinite(pred["predicted"])
            assert pred["inside"] == (m[o]["low"] <= pred["predicted"] <= m[o]["high"])
        assert -1 <= fam["qini"][email] <= 1
        assert -1 <= rep["two_model_logistic"]["qini"][email] <= 1
    assert fam["n_inside"] == sum(v["inside"] for e in fam["effects"].values()
                                  for v in e.values())
    # the uplift report scores the same visit ranking as the family's own Qini
    up = rep["uplift"]["tasks"]
    for email in ("mens_email", "womens_email"):
        got = up[email]["visit"]["scores"]["logistic"]["qini"]
        assert got == pytest.approx(fam["qini"][email], nan_ok=True)


def taobao_subsample(tmp: Path, n_users: int = 120) -> Path:
    src = shared_file("taobao_userbehavior/taobao_userbehavior_sample.csv")
    df = pd.read_csv(src)
    keep = df["user_id"].drop_duplicates().iloc[:n_users]
    sub = tmp / "taobao_userbehavior" / "taobao_userbehavior_sample.csv"
    sub.parent.mkdir(parents=True, exist_ok=True)
    df[df["user_id"].isin(keep)].to_csv(sub, index=False)
    return sub


@pytest.mark.shared_data
def test_next_period_check_on_a_taobao_subsample(tmp_path: Path) -> None:
    src = taobao_subsample(tmp_path, 80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = import_taobao(src, tmp_path / "ds")
        rep = next_period_check(folder, RealDataConfig(families=("logistic", "gru"), epochs=1,
                                                       hidden=8))
    assert rep["has_prices"] is False
    assert sum(rep["n_users"].values()) == 80
    assert rep["n_rows"] > 0
    const = rep["constant"]
    assert 0 < const["train_purchase_rate"] < 1
    for fam in ("logistic", "gru"):
        r = rep["families"][fam]
        assert 0 <= r["purchase_auc"] <= 1 and r["purchase_log_loss"] > 0
        assert 0 < r["purchase_base_rate"] < 1
        assert "revenue_nll" not in r
    d = rep["families"]["gru"]["auc_minus_logistic"]
    assert d["low"] <= d["high"]
    assert d["mean"] == pytest.approx(rep["families"]["gru"]["purchase_auc"]
                                      - rep["families"]["logistic"]["purchase_auc"])
    assert "auc_minus_logistic" not in rep["families"]["logistic"]


@pytest.mark.shared_data
@pytest.mark.expensive
def test_bench_predictor_real_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from agents.cli import run_main

    hillstrom_subsample(tmp_path, 1500)
    taobao_subsample(tmp_path, 60)
    src = shared_file("online_retail/online_retail.csv.gz")
    sub = tmp_path / "online_retail" / "online_retail.csv.gz"
    sub.parent.mkdir(parents=True)
    with gzip.open(src, "rt") as f, gzip.open(sub, "wt") as g:
        for i, line in enumerate(f):
            if i > 15000:
                break
            g.write(line)
    out = tmp_path / "run"
    rc = run_main(["bench", "predictor-real", "--data", str(tmp_path), "--families",
                   "logistic,gru", "--epochs", "1", "--hidden", "8", "--no-progress",
                   "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    bench = json.loads((out / "bench.json").read_text())
    assert set(bench) == {"config", "hillstrom", "online-retail", "taobao"}
    assert bench["online-retail"]["has_prices"] is True
    assert "expected_revenue_mae" in bench["online-retail"]["families"]["gru"]
    assert (out / "config.json").is_file()
    assert "Hillstrom" in printed and "Online Retail" in printed


def test_bench_predictor_real_cli_errors(tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    from agents.cli import run_main

    assert run_main(["bench", "predictor-real", "--data", str(tmp_path), "--parts", "nope"]) == 1
    assert "--parts" in capsys.readouterr().err
    assert run_main(["bench", "predictor-real", "--data", str(tmp_path), "--parts",
                     "taobao"]) == 1
    assert "missing" in capsys.readouterr().err
