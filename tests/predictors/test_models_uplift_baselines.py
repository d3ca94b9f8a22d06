"""Tests of who-responds checks: AUUC and paired bootstrap intervals (uplift.py), the T- and
DR-learner baselines (metalearners.py), effects per customer group (heterogeneity.py) and the
Hillstrom uplift report (hillstrom_uplift.py), on randomized toys with a known heterogeneous
effect, plus a CLI smoke run on a slice of Hillstrom."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import shared_file  # noqa: E402

from predictors.errors import ConfigError
from predictors.models.heterogeneity import attribute_groups, group_agreement
from predictors.models.hillstrom_uplift import BASELINES, uplift_report
from predictors.models.metalearners import BoostingConfig, DRLearner, TLearner
from predictors.models.uplift import auuc, qini_coefficient, uplift_curve, uplift_scores

FAST = BoostingConfig(max_iter=40, learning_rate=0.1, min_samples_leaf=50)


def three_arm_toy(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Three arms at 1/3 each; arm 1's effect is +0.25 where x0 > 0 and -0.08 elsewhere, arm -1
    (a second treatment) has none. Returns x, y, arm (1, 0, -1) and the true effect of arm 1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    arm = rng.integers(-1, 2, n)
    tau = np.where(x[:, 0] > 0, 0.25, -0.08)
    base = 0.15 + 0.05 * (x[:, 1] > 0)
    y = (rng.random(n) < base + tau * (arm == 1)).astype(float)
    return x, y, arm, tau


# ---------------------------------------------------------------- AUUC and bootstrap
def test_uplift_curve_end_point_and_auuc_bounds() -> None:
    x, y, arm, tau = three_arm_toy(6000, 0)
    pair = arm >= 0
    yy, t = y[pair], arm[pair] == 1
    k, u = uplift_curve(tau[pair], yy, t)
    assert k[-1] == len(yy)
    assert u[-1] == pytest.approx((yy[t].mean() - yy[~t].mean()) * len(yy))
    assert auuc(np.where(t, yy, -yy), yy, t) == pytest.approx(1.0)
    assert auuc(np.zeros(len(yy)), yy, t) == pytest.approx(0.0, abs=1e-12)
    assert auuc(tau[pair], yy, t) > 0.1 > auuc(-tau[pair], yy, t)
    with pytest.raises(ValueError, match="both treated and control"):
        auuc(np.zeros(3), np.zeros(3), np.ones(3))


def test_true_uplift_beats_a_random_ranking_with_a_paired_interval() -> None:
    x, y, arm, tau = three_arm_toy(9000, 1)
    pair = arm >= 0
    noise = np.random.default_rng(2).random(len(y))
    r = uplift_scores({"true": tau[pair], "random": noise[pair]}, y[pair], arm[pair] == 1,
                      n_boot=60, seed=3, pairs=(("true", "random"),))
    assert r["true"]["qini"] == pytest.approx(qini_coefficient(tau[pair], y[pair],
                                                               arm[pair] == 1))
    assert r["true"]["qini"] > r["random"]["qini"]
    d = r["true-random"]
    assert d["qini"] == pytest.approx(r["true"]["qini"] - r["random"]["qini"])
    assert 0 < d["qini_low"] <= d["qini"] <= d["qini_high"]
    assert d["auuc_low"] > 0
    again = uplift_scores({"true": tau[pair], "random": noise[pair]}, y[pair], arm[pair] == 1,
                          n_boot=60, seed=3, pairs=(("true", "random"),))
    assert again == r  # seeded
    point = uplift_scores({"true": tau[pair]}, y[pair], arm[pair] == 1, n_boot=0)
    assert np.isnan(point["true"]["qini_low"]) and np.isfinite(point["true"]["qini"])
    with pytest.raises(ValueError, match="pairs"):
        uplift_scores({"true": tau[pair]}, y[pair], arm[pair] == 1, pairs=(("true", "x"),))


# ---------------------------------------------------------------- meta-learners
@pytest.fixture(scope="module")
def fitted_learners():
    x, y, arm, _ = three_arm_toy(12000, 4)
    t = TLearner(FAST, seed=0).fit(x, y, arm)
    dr = DRLearner(FAST, seed=0).fit(x, y, arm, 1 / 3, 1 / 3)
    return t, dr


@pytest.mark.parametrize("which", [0, 1])
def test_meta_learners_recover_the_sign_and_rank_well(fitted_learners, which) -> None:
    model = fitted_learners[which]
    x, y, arm, tau = three_arm_toy(12000, 5)  # held-out draw
    u = model.predict_uplift(x)
    pos = x[:, 0] > 0
    assert u[pos].mean() > 0.1 and u[~pos].mean() < 0  # the sign of the effect on both sides
    pair = arm >= 0
    q_model = qini_coefficient(u[pair], y[pair], arm[pair] == 1)
    q_true = qini_coefficient(tau[pair], y[pair], arm[pair] == 1)
    noise = np.random.default_rng(6).random(pair.sum())
    assert q_model > 0.6 * q_true
    assert q_model > qini_coefficient(noise, y[pair], arm[pair] == 1) + 0.05


def test_dr_pseudo_outcomes_average_to_the_effect(fitted_learners) -> None:
    _, dr = fitted_learners
    x, _, _, tau = three_arm_toy(12000, 4)
    assert dr.pseudo_outcome_.mean() == pytest.approx(tau.mean(), abs=0.03)


def test_meta_learner_errors() -> None:
    x, y, arm, _ = three_arm_toy(200, 7)
    with pytest.raises(ConfigError, match="not fitted"):
        TLearner().predict_uplift(x)
    with pytest.raises(ConfigError, match="not fitted"):
        DRLearner().predict_uplift(x)
    with pytest.raises(ValueError, match="arm"):
        TLearner(FAST).fit(x, y, arm + 5)
    with pytest.raises(ValueError, match="pscore_treated"):
        DRLearner(FAST).fit(x, y, arm, 0.0, 0.5)
    with pytest.raises(ValueError, match="treated rows"):
        TLearner(FAST).fit(x, y, np.zeros(len(y), int))
    with pytest.raises(ConfigError, match="n_folds"):
        DRLearner(n_folds=1)
    with pytest.raises(ConfigError, match="max_leaf_nodes"):
        BoostingConfig(max_leaf_nodes=1)


# ---------------------------------------------------------------- effect per group
def test_attribute_groups_values_and_quartiles() -> None:
    u = pd.DataFrame({"user_id": range(100), "channel": ["Web", "Phone"] * 50,
                      "history": np.arange(100.0), "flag": [0, 1] * 50})
    g = attribute_groups(u)
    assert set(g) == {"channel", "history", "flag"}
    assert set(g["channel"]) == {"Web", "Phone"} and set(g["flag"]) == {"0", "1"}
    assert g["history"].nunique() == 4 and g["history"].iloc[0].startswith("q1")


def test_group_agreement_true_reversed_and_constant_models() -> None:
    x, y, arm, tau = three_arm_toy(30000, 8)
    groups = np.where(x[:, 0] > 0, "pos", "neg").astype(object)
    groups[x[:, 2] > 1.5] = None  # in no group
    rep = group_agreement(groups, y, arm, np.ones(len(y), bool),
                          {"true": tau, "reversed": -tau, "constant": np.full(len(y), 0.05)})
    assert [g["label"] for g in rep["groups"]] == ["neg", "pos"]
    pos = rep["groups"][1]
    assert pos["measured"]["low"] < 0.25 < pos["measured"]["high"]
    assert pos["predicted"]["true"] == pytest.approx(0.25)
    a = rep["agreement"]
    assert a["true"]["n_significant"] == 1 and a["true"]["n_agree"] == 1
    assert a["reversed"]["n_agree"] == 0 and a["constant"]["n_agree"] == 0
    # both groups' effects exclude 0 (+0.25, -0.08): the true model has both signs right, the
    # reversed none, a constant positive one only the positive group's
    assert a["true"]["n_signed_groups"] == 2 and a["true"]["n_sign_agree"] == 2
    assert a["reversed"]["n_sign_agree"] == 0 and a["constant"]["n_sign_agree"] == 1
    assert all(np.isnan(v["spearman"]) for v in a.values())  # two groups only


# ---------------------------------------------------------------- the report
def test_uplift_report_on_a_randomized_toy() -> None:
    """A family predicting the true effect beats the baselines' Qini on visits, a constant one
    does not; the baselines are all present and every group's predicted mean is reported."""
    n = 9000
    x, _, arm, tau = three_arm_toy(n, 9)
    rng = np.random.default_rng(10)
    ids = np.arange(1, n + 1)
    action = np.select([arm == 1, arm == 0], ["mens_email", "none"], "womens_email")
    visits = (rng.random(n) < 0.15 + tau * (arm == 1)).astype(int)
    buys = visits * (rng.random(n) < 0.1)
    by_user = pd.DataFrame({"user_id": ids, "action": action, "visits": visits,
                            "purchases": buys}).set_index("user_id")
    users = pd.DataFrame({"user_id": ids, "x0": x[:, 0], "side": np.where(x[:, 0] > 0, "a",
                                                                          "b")})
    train, test = ids[: n // 2], ids[n // 2:]
    true = {"mens_email": {"visit": tau[n // 2:], "conversion": 0.1 * tau[n // 2:]},
            "womens_email": {"visit": np.zeros(n - n // 2), "conversion": np.zeros(n - n // 2)}}
    const = {e: {o: np.full(n - n // 2, 0.03) for o in ("visit", "conversion")} for e in true}
    rep = uplift_report(users, by_user, train, test, {"oracle": true, "flat": const},
                        ("mens_email", "womens_email"), n_boot=40, seed=0, boosting=FAST)
    task = rep["tasks"]["mens_email"]["visit"]
    assert set(task["scores"]) == {"oracle", "flat", *BASELINES}
    assert task["best_baseline"] in BASELINES
    assert task["scores"]["oracle"]["qini"] > task["scores"]["flat"]["qini"] == 0.0
    assert task["vs_best"]["flat"]["qini_high"] < 0 and not task["beats"]["flat"]
    assert task["scores"][task["best_baseline"]]["qini"] > 0.1  # the baselines find it too
    side = rep["groups"]["mens_email"]["visit"]["side"]
    assert side["agreement"]["oracle"]["n_agree"] == side["agreement"]["oracle"]["n_significant"]
    assert side["agreement"]["oracle"]["n_significant"] == 1
    assert rep["agreement"]["mens_email"]["visit"]["flat"]["n_agree"] == 0
    assert set(rep["groups"]["mens_email"]["visit"]) == {"x0", "side"}
    json.dumps(rep)  # JSON-ready


# ---------------------------------------------------------------- CLI on a slice of Hillstrom
@pytest.mark.shared_data
def test_bench_predictor_real_hillstrom_uplift_cli(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    from agents.cli import run_main

    src = shared_file("hillstrom/hillstrom.csv")
    sub = tmp_path / "hillstrom" / "hillstrom.csv"
    sub.parent.mkdir(parents=True)
    pd.read_csv(src, nrows=2000).to_csv(sub, index=False)
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = run_main(["bench", "predictor-real", "--data", str(tmp_path), "--parts",
                       "hillstrom", "--families", "logistic,markov", "--epochs", "1",
                       "--hidden", "4", "--n-boot", "10", "--threads", "1", "--no-progress",
                       "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "who responds" in printed and "best baseline" in printed
    up = json.loads((out / "bench.json").read_text())["hillstrom"]["uplift"]
    assert up["n_boot"] == 10
    for e in ("mens_email", "womens_email"):
        for o in ("visit", "conversion"):
            task = up["tasks"][e][o]
            assert set(task["vs_best"]) == {"logistic", "markov"}
            assert set(up["groups"][e][o]) >= {"newbie", "channel", "zip_code", "womens"}
    assert json.loads((out / "config.json").read_text())["options"]["num_threads"] == 1
