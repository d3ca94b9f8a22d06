"""Rollout calibration: per-period offsets recover a planted bias, apply in the simulator, and
survive a save/load round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.cli import run_main
from envs import load_learned_shop, rollout
from envs.rollout_calibration import RolloutCalibrationConfig, fit_rollout_calibration
from predictors.errors import CheckpointError, ConfigError
from predictors.models import BehaviorPredictor
from predictors.models.calibration import HEAD_CHANNELS, HeadCalibration
from predictors.models.rollout_calibration import (
    RolloutCalibration,
    solve_rate_offsets,
    step_basis,
)


def _planted(pred: BehaviorPredictor, shift: dict[str, float], revenue: float) -> None:
    """Give ``pred`` a known bias: logit shifts per head and a log-revenue shift."""
    n = len(pred.action_names_)
    maps = {h: {str(j): {"a": 1.0, "b": shift.get(h, 0.0)} for j in range(n)}
            for h in HEAD_CHANNELS}
    pred.calibration_ = HeadCalibration("temperature", maps, [revenue] * n)


def test_rate_offsets_solve_the_score_equation_known_answer() -> None:
    rng = np.random.default_rng(0)
    horizon, true = 10, np.array([0.4, -0.6])
    z = [rng.normal(-2, 1, 4000) for _ in range(horizon)]
    phi = step_basis(np.arange(horizon), horizon, 1)
    target = np.array([np.mean(1 / (1 + np.exp(-(zt + phi[t] @ true)))) for t, zt in
                       enumerate(z)])
    theta = solve_rate_offsets(z, target, np.full(horizon, 100.0), 1, horizon)
    np.testing.assert_allclose(theta, true, atol=1e-5)
    # a mask (rows that cannot have the event) is respected: the same rate over half the rows
    # needs a larger offset
    half = [np.r_[np.ones(2000), np.zeros(2000)] for _ in range(horizon)]
    masked = solve_rate_offsets(z, target / 2, np.full(horizon, 100.0), 1, horizon,
                                mask=half)
    assert abs(masked[0] - true[0]) < 0.1


def test_rollout_calibration_recovers_a_planted_bias(tiny_synthetic_run) -> None:
    data, folder = tiny_synthetic_run
    cfg = RolloutCalibrationConfig(replicates=8, rounds=8)
    ref = BehaviorPredictor.load(folder)
    with pytest.warns(UserWarning, match="only 45 validation users"):  # a tiny shop
        cal_ref, _ = fit_rollout_calibration(ref, data, cfg)
    biased = BehaviorPredictor.load(folder)
    _planted(biased, {"visit": -0.5, "purchase": -0.4}, revenue=-0.3)
    with pytest.warns(UserWarning, match="validation users"):
        cal_b, report = fit_rollout_calibration(biased, data, cfg)
    assert biased.rollout_calibration_ is None  # the predictor is left as it was
    for head, planted in (("visit", 0.5), ("purchase", 0.4), ("revenue", 0.3)):
        diff = np.asarray(cal_b.coef[head]) - np.asarray(cal_ref.coef[head])
        assert diff[0] == pytest.approx(planted, abs=0.1), head  # the level
        assert abs(diff[1]) < 0.15, head  # no drift was planted
    first, last = report["rounds"][0]["replay"], report["rounds"][-1]["replay"]
    assert first["visit"]["rel_error"] < -0.1  # the planted bias shows in the replay...
    assert abs(last["visit"]["rel_error"]) < abs(first["visit"]["rel_error"]) / 3  # ...and goes


def test_simulator_applies_the_offsets_by_rollout_step(tiny_synthetic_run) -> None:
    data, folder = tiny_synthetic_run
    pred = BehaviorPredictor.load(folder)
    shop = load_learned_shop(pred, data, start_period=1)
    none = np.zeros((len(shop.starts), 6), np.int64)
    plain = rollout(shop, none, 6, seed=3, replicates=4)
    # no visit offset on the first step, +3 logits from the third on
    pred.rollout_calibration_ = RolloutCalibration(3, 1, {"visit": (0.0, 3.0)})
    shifted = rollout(shop, none, 6, seed=3, replicates=4)
    assert shifted.visit[:, 0].mean() == pytest.approx(plain.visit[:, 0].mean())
    assert shifted.visit[:, 2:].mean() > plain.visit[:, 2:].mean() + 0.2


def test_save_load_round_trip_and_corruption(tiny_synthetic_run, tmp_path) -> None:
    data, folder = tiny_synthetic_run
    pred = BehaviorPredictor.load(folder)
    cal = RolloutCalibration(7, 1, {"visit": (0.1, -0.2), "revenue": (0.05, 0.0)},
                             {"users": "val"})
    pred.rollout_calibration_ = cal
    pred.save(tmp_path / "p")
    back = BehaviorPredictor.load(tmp_path / "p")
    assert back.rollout_calibration_ == cal
    step = np.arange(10)
    np.testing.assert_allclose(back.rollout_calibration_.offsets("visit", step),
                               0.1 - 0.2 * np.minimum(step, 6) / 6, atol=1e-12)
    assert not back.rollout_calibration_.offsets("purchase", step).any()
    # re-fitting the head calibration drops the rollout offsets fitted on the old heads
    meta = json.loads((tmp_path / "p" / "predictor.json").read_text())
    meta["rollout_calibration"]["coef"]["visit"] = [0.1]
    (tmp_path / "p" / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="predictor.json.*coef"):
        BehaviorPredictor.load(tmp_path / "p")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"horizon": 0}, "horizon"), ({"degree": 4}, "degree"),
    ({"coef": {"churn": (0.0, 0.0)}}, "unknown head"),
    ({"coef": {"visit": (np.nan, 0.0)}}, "finite"),
])
def test_rollout_calibration_invalid(kwargs: dict, match: str) -> None:
    base = {"horizon": 5, "degree": 1, "coef": {}}
    with pytest.raises(ConfigError, match=match):
        RolloutCalibration(**(base | kwargs))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"degree": -1}, "degree"), ({"rounds": 0}, "rounds"), ({"step_size": 0.0}, "step_size"),
    ({"heads": ("churn",)}, "heads"), ({"horizon": 1}, "horizon"),
])
def test_config_invalid(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RolloutCalibrationConfig(**kwargs)


@pytest.mark.filterwarnings("ignore:rollout calibration. only")
def test_cli_writes_the_calibrated_predictor(tiny_synthetic_run, tmp_path, capsys) -> None:
    data, folder = tiny_synthetic_run
    out = tmp_path / "rol"
    assert run_main(["calibrate-predictor", "--predictor", str(folder), "--data", str(data),
                     "--method", "rollout", "--replicates", "2", "--rounds", "1",
                     "--out", str(out)]) == 0
    rep = json.loads((out / "calibration.json").read_text())
    assert rep["method"] == "rollout" and len(rep["rounds"]) == 2
    assert "rollout calibration" in capsys.readouterr().err  # the progress bar
    assert rep["fitted_on"]["users"] == "val"
    loaded = BehaviorPredictor.load(out).rollout_calibration_
    assert loaded is not None and set(loaded.coef) == set(rep["heads"])
    assert run_main(["calibrate-predictor", "--predictor", str(folder), "--data", str(data),
                     "--method", "rollout", "--degree", "5", "--no-progress", "--out",
                     str(tmp_path / "bad")]) == 1
    assert not (tmp_path / "bad").exists()
