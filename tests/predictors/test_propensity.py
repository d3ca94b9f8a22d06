"""Estimated logging propensities: close to the true ones when the policy reads the features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictors import ActionSpec, DatasetSpec
from predictors.propensity import (
    PropensityConfig,
    calibration_report,
    estimate_propensities,
)

SPEC = DatasetSpec(actions=(ActionSpec("none", 0.0, "none"),
                            ActionSpec("email", 0.05, "message", channel="email")))


def logged_panel(n_users: int = 400, n_periods: int = 8, seed: int = 0):
    """A panel whose logging policy e-mails last period's buyers with 0.8, others with 0.2."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for u in range(n_users):
        bought = False
        for t in range(n_periods):
            p = 0.8 if bought else 0.2
            a = int(rng.random() < p)
            buy = rng.random() < 0.3
            rows.append((u, t, int(buy), 20.0 * buy, a))
            truth.append(p if a else 1 - p)
            bought = buy
    df = pd.DataFrame(rows, columns=["user_id", "period", "purchases", "revenue",
                                     "action_index"])
    for c in ("visits", "views", "carts", "favs", "unsubscribes"):
        df[c] = 0
    return df, np.array(truth)


@pytest.mark.parametrize("model", ["logistic", "boosting"])
def test_estimate_recovers_a_feature_driven_policy(model: str) -> None:
    panel, truth = logged_panel()
    est = estimate_propensities(panel, SPEC, PropensityConfig(model=model, seed=0))
    assert np.allclose(est.action_dist.sum(axis=1), 1.0)
    assert np.abs(est.pscore - truth).mean() < 0.06
    cal = est.calibration
    assert cal["log_loss"] < cal["log_loss_marginal"] - 0.05
    assert cal["ece"] < 0.05
    # Cross-fitted: same seed same answer; another seed other folds.
    again = estimate_propensities(panel, SPEC, PropensityConfig(model=model, seed=0))
    assert np.array_equal(est.pscore, again.pscore)


def test_estimate_refuses_rows_without_a_logged_action_or_no_choice() -> None:
    panel, _ = logged_panel(n_users=20, n_periods=3)
    bad = panel.assign(action_index=np.where(np.arange(len(panel)) == 4, -1,
                                             panel["action_index"]))
    with pytest.raises(ValueError, match="needs a logged action"):
        estimate_propensities(bad, SPEC)
    with pytest.raises(ValueError, match="only action 'none' is ever logged"):
        estimate_propensities(panel.assign(action_index=0), SPEC)


def test_calibration_report_of_a_perfect_estimate() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.1, 0.9, 20_000)
    dist = np.stack([1 - p, p], axis=1)
    action = (rng.random(len(p)) < p).astype(int)
    rep = calibration_report(dist, action, ["none", "email"])
    assert rep["ece"] < 0.02
    assert rep["actions"]["email"]["mean_estimate"] == pytest.approx(
        rep["actions"]["email"]["observed_share"], abs=0.02)


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "forest"}, "model must be one of"),
    ({"n_folds": 1}, "n_folds"),
    ({"clip": 0.0}, "clip"),
])
def test_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PropensityConfig(**kwargs)
