"""Per-action effects from logged propensities: the check detects a planted per-action bias,
the action calibration removes it, and both validate their inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.cli import run_main
from envs import load_learned_shop
from envs.action_calibration import ActionCalibrationConfig, fit_action_calibration
from envs.action_effects import (
    ActionEffectConfig,
    action_effect_fidelity,
    logged_steps,
)
from predictors import build_panel, open_dataset
from predictors.errors import CheckpointError, ConfigError
from predictors.models import BehaviorPredictor
from predictors.models.action_calibration import ActionCalibration, solve_logit_offset
from predictors.models.calibration import HEAD_CHANNELS, HeadCalibration

CHECK = ActionEffectConfig(horizons=(1, 3), replicates=2, n_boot=50, seed=0)


def _plant(pred: BehaviorPredictor, action: int, shift: float) -> None:
    """Shift the visit and purchase logits of one action's column (a known per-action bias)."""
    n = len(pred.action_names_)
    maps = {h: {str(j): {"a": 1.0, "b": shift if (j == action and h in ("visit", "purchase"))
                         else 0.0} for j in range(n)} for h in HEAD_CHANNELS}
    pred.calibration_ = HeadCalibration("temperature", maps, [0.0] * n)


def _check(pred: BehaviorPredictor, data, panel) -> dict:
    shop = load_learned_shop(pred, data, start_period=1, start_users="all", panel=panel)
    return action_effect_fidelity(shop, panel, int(panel["period"].max()), CHECK)


def test_check_detects_a_planted_bias_and_calibration_removes_it(tiny_synthetic_run) -> None:
    data, folder = tiny_synthetic_run
    panel = build_panel(open_dataset(data))
    email = 1
    ref, biased = BehaviorPredictor.load(folder), BehaviorPredictor.load(folder)
    _plant(ref, email, 0.0)
    _plant(biased, email, 1.0)
    before_ref, before_b = _check(ref, data, panel), _check(biased, data, panel)
    k1_ref, k1_b = before_ref["horizons"]["1"]["actions"], before_b["horizons"]["1"]["actions"]
    # the planted bias shows in email's advantage, and only there
    assert k1_b["email"]["advantage_bias"] > k1_ref["email"]["advantage_bias"] + 0.2
    for name in ("push", "coupon_10"):
        assert k1_b[name]["advantage_bias"] == pytest.approx(k1_ref[name]["advantage_bias"],
                                                             abs=1e-9)
    assert before_b["horizons"]["3"]["actions"]["email"]["bias"] > \
        before_ref["horizons"]["3"]["actions"]["email"]["bias"]
    # the log side does not depend on the model
    assert k1_b["email"]["log"] == pytest.approx(k1_ref["email"]["log"])
    few = ActionCalibrationConfig(min_rows=5)  # a tiny shop
    cal_ref, _ = fit_action_calibration(ref, data, few)
    cal_b, report = fit_action_calibration(biased, data, few)
    assert biased.action_calibration_ is None  # the predictor is left as it was
    for head in ("visit", "purchase"):
        diff = cal_b.offset(head, "email") - cal_ref.offset(head, "email")
        assert diff == pytest.approx(-1.0, abs=1e-4), head  # the planted shift, recovered
        assert cal_b.offset(head, "none") == 0.0  # relative: none keeps its column
    assert report["per_action"]["email"]["before"]["visit_sim"] > \
        report["per_action"]["email"]["before"]["visit_log"]
    # absolute offsets match every action's weighted one-step rates to the log's
    _, rep_abs = fit_action_calibration(biased, data, ActionCalibrationConfig(
        min_rows=5, relative=False))
    for row in rep_abs["per_action"].values():
        assert row["after"]["visit_sim"] == pytest.approx(row["after"]["visit_log"], rel=1e-6)
        assert row["after"]["purchase_sim"] == pytest.approx(row["after"]["purchase_log"],
                                                             rel=1e-4)
    # with their calibrations the two shops give the same one-step values
    ref.action_calibration_, biased.action_calibration_ = cal_ref, cal_b
    a_ref, a_b = _check(ref, data, panel), _check(biased, data, panel)
    for name, row in a_b["horizons"]["1"]["actions"].items():
        assert row["sim"] == pytest.approx(a_ref["horizons"]["1"]["actions"][name]["sim"],
                                           abs=1e-6), name


def test_log_value_is_the_self_normalised_ipw_mean(tiny_synthetic_run) -> None:
    data, folder = tiny_synthetic_run
    panel = build_panel(open_dataset(data))
    pred = BehaviorPredictor.load(folder)
    shop = load_learned_shop(pred, data, start_period=1, start_users="all", panel=panel)
    horizon = int(panel["period"].max())
    res = action_effect_fidelity(shop, panel, horizon, CHECK)
    steps = logged_steps(panel, shop, horizon)
    # no unsubscribes block a `none` row, so its logged reward is the revenue
    rev = steps.raw[:, :, -1]
    m = steps.eligible & (steps.action == 0)
    w = 1.0 / steps.pscore[m]
    row = res["horizons"]["1"]["actions"]["none"]
    assert row["log"] == pytest.approx(float(np.sum(w * rev[m]) / w.sum()))
    assert row["n_rows"] == int(m.sum())
    assert row["log_low"] <= row["log"] <= row["log_high"]
    assert res["rows_left_out"] == int((~steps.eligible).sum())


def test_truth_counterpart_and_no_propensities(tiny_synthetic_run) -> None:
    import pandas as pd

    data, folder = tiny_synthetic_run
    panel = build_panel(open_dataset(data))
    pred = BehaviorPredictor.load(folder)
    shop = load_learned_shop(pred, data, start_period=1, start_users="all", panel=panel)
    truth = pd.read_parquet(data / "truth" / "outcomes.parquet")
    horizon = int(panel["period"].max())
    res = action_effect_fidelity(shop, panel, horizon, CHECK, truth=truth)
    k1 = res["horizons"]["1"]["actions"]
    assert all(np.isfinite(r["true"]) for r in k1.values())
    assert "true" not in res["horizons"]["3"]["actions"]["none"]  # one step only
    assert k1["none"]["advantage_true"] == 0.0
    blind = panel.assign(propensity=np.nan)
    with pytest.raises(ConfigError, match="propensities"):
        action_effect_fidelity(shop, blind, horizon, CHECK)
    with pytest.raises(ConfigError, match="propensities"):
        fit_action_calibration(pred, data, panel=blind)


def test_solve_logit_offset_with_weights_and_cap() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(-1, 1, 5000)
    w = rng.uniform(1, 20, 5000)
    p = 1 / (1 + np.exp(-(z + 0.7)))
    d = solve_logit_offset(z, p, w)
    assert d == pytest.approx(0.7, abs=1e-6)
    capped = solve_logit_offset(z, np.minimum(p, 0.3), w, cap=np.full(5000, 0.3))
    assert np.isfinite(capped)


def test_save_load_round_trip_and_apply(tiny_synthetic_run, tmp_path) -> None:
    data, folder = tiny_synthetic_run
    pred = BehaviorPredictor.load(folder)
    names = pred.action_names_
    cal = ActionCalibration(names, {"visit": tuple(0.1 * j for j in range(len(names))),
                                    "revenue": (0.0,) * len(names)}, True, {"users": "val"})
    pred.action_calibration_ = cal
    pred.save(tmp_path / "p")
    back = BehaviorPredictor.load(tmp_path / "p")
    assert back.action_calibration_ == cal
    shop = load_learned_shop(back, data, start_period=1)
    raw = back.predict_from_state(shop.starts.state)
    shifted = cal.apply(raw)
    np.testing.assert_allclose(shifted.p_visit[:, 0], raw.p_visit[:, 0])
    assert (shifted.p_visit[:, 2] > raw.p_visit[:, 2]).all()
    np.testing.assert_allclose(shifted.p_purchase, raw.p_purchase)
    meta = json.loads((tmp_path / "p" / "predictor.json").read_text())
    meta["action_calibration"]["offsets"]["visit"] = [0.1]
    (tmp_path / "p" / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="predictor.json.*one per action"):
        BehaviorPredictor.load(tmp_path / "p")


@pytest.mark.parametrize(("cls", "kwargs", "match"), [
    (ActionEffectConfig, {"horizons": ()}, "horizons"),
    (ActionEffectConfig, {"horizons": (0, 2)}, "horizons"),
    (ActionEffectConfig, {"replicates": 0}, "replicates"),
    (ActionEffectConfig, {"alpha": 1.5}, "alpha"),
    (ActionEffectConfig, {"max_weight": 0.5}, "max_weight"),
    (ActionCalibrationConfig, {"heads": ("churn",)}, "heads"),
    (ActionCalibrationConfig, {"start_period": 0}, "start_period"),
    (ActionCalibrationConfig, {"min_rows": 0}, "min_rows"),
    (ActionCalibration, {"action_names": ("none", "email"), "offsets": {"churn": (0, 0)}},
     "unknown head"),
    (ActionCalibration, {"action_names": ("none", "email"), "offsets": {"visit": (0.0,)}},
     "one per action"),
    (ActionCalibration, {"action_names": ("none",), "offsets": {"visit": (np.inf,)}},
     "finite"),
])
def test_invalid_options(cls, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


def test_cli_calibrates_and_fidelity_reports(tiny_synthetic_run, tmp_path, capsys) -> None:
    data, folder = tiny_synthetic_run
    out = tmp_path / "act"
    assert run_main(["calibrate-predictor", "--predictor", str(folder), "--data",
                     str(data), "--method", "action", "--out", str(out)]) == 0
    assert "fewer than 200 logged rows" in capsys.readouterr().err  # a tiny shop
    rep = json.loads((out / "calibration.json").read_text())
    assert rep["method"] == "action" and rep["fitted_on"]["users"] == "val"
    assert BehaviorPredictor.load(out).action_calibration_ is not None
    fid = tmp_path / "fid"
    assert run_main(["fidelity", "--predictor", str(out), "--data", str(data), "--out",
                     str(fid), "--horizon", "4", "--replicates", "1",
                     "--policy-replicates", "1", "--action-horizons", "1,2"]) == 0
    ae = json.loads((fid / "fidelity.json").read_text())["action_effects"]
    assert set(ae["horizons"]) == {"1", "2"}
    assert "true" in ae["horizons"]["1"]["actions"]["email"]
    assert "Per-action effects" in (fid / "report.md").read_text()
    assert run_main(["fidelity", "--predictor", str(out), "--data", str(data), "--out",
                     str(tmp_path / "bad"), "--action-horizons", "1,x"]) != 0
    assert not (tmp_path / "bad").exists()


def test_offset_se_shrinks_with_rows() -> None:
    from predictors.models.action_calibration import logit_offset_se

    rng = np.random.default_rng(1)
    ses = []
    for n in (2000, 8000):
        z = rng.normal(-1, 1, n)
        y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
        w = np.ones(n)
        d = solve_logit_offset(z, y, w)
        ses.append(logit_offset_se(z, y, w, d, np.arange(n)))
        assert abs(d) < 4 * ses[-1]  # no bias planted: within noise
    assert ses[1] == pytest.approx(ses[0] / 2, rel=0.2)  # 1/sqrt(n)
