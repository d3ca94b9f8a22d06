"""Per-head, per-action calibration fitted on validation users, checked on held-out users."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from predictors.errors import ConfigError
from predictors.models import BehaviorPredictor, PredictorConfig, toy_panel
from predictors.models.calibration import calibration_table, fit_calibration


@pytest.fixture(scope="module")
def biased():
    """A fitted toy predictor whose visit logit of action ``a1`` is pushed up by a known +1."""
    panel, users = toy_panel(n_users=1000, n_periods=14, seed=0, targeted=True)
    p = BehaviorPredictor(PredictorConfig(family="logistic", epochs=4, device="cpu", seed=0,
                                          num_threads=1)).fit(panel, ["none", "a1"], users,
                                                              progress=False)
    with torch.no_grad():
        p.net_.heads.per_action.bias[1 * 6 + 0] += 1.0
    full = p.tensors(panel, users)
    split = p.split_.set_index("user_id")["split"].reindex(full.user_ids).to_numpy()
    return p, panel, users, full.subset(np.flatnonzero(split == "test"))


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_calibration_removes_a_known_bias_on_held_out_users(biased, method, tmp_path) -> None:
    p, panel, users, test = biased
    before = calibration_table(test, p.predict_tensors(test))["visit"]
    p.calibrate(panel, users, method=method)
    after = calibration_table(test, p.predict_tensors(test))["visit"]
    gap_b = abs(before["a1"]["mean_pred"] - before["a1"]["mean_obs"])
    gap_a = abs(after["a1"]["mean_pred"] - after["a1"]["mean_obs"])
    assert gap_b > 0.08  # the planted bias shows on held-out users
    assert gap_a < 0.35 * gap_b
    assert after["a1"]["ece"] < before["a1"]["ece"]
    # the unbiased action is not made worse
    assert abs(after["none"]["mean_pred"] - after["none"]["mean_obs"]) < 0.03
    # calibration travels with the saved predictor
    loaded = BehaviorPredictor.load(p.save(tmp_path / "cal"))
    assert np.allclose(loaded.predict_tensors(test).p_visit, p.predict_tensors(test).p_visit)
    p.calibration_ = None


def test_rare_action_falls_back_to_the_pooled_map() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    z = rng.normal(-1, 1, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(z + 0.7)))).astype(float)
    act = np.where(rng.random(n) < 0.02, 1, 0)
    p = 1 / (1 + np.exp(-z))
    cal = fit_calibration("temperature", dict.fromkeys(("visit", "purchase", "unsubscribe",
                                                        "churn"), p),
                          dict.fromkeys(("visit", "purchase", "unsubscribe", "churn"), y),
                          act, 2, min_rows=200)
    assert cal.n_rows["visit"][1] == 0 and cal.n_rows["visit"][0] > 2000
    assert cal.maps["visit"]["0"]["b"] == pytest.approx(0.7, abs=0.15)
    with pytest.raises(ConfigError, match="calibration"):
        fit_calibration("platt", {}, {}, act, 2)
