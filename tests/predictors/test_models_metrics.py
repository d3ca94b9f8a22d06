"""Metrics and panel -> tensors labels."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from predictors.errors import DataValidationError
from predictors.models import (
    Predictions,
    counterfactual_report,
    expected_calibration_error,
    log_loss,
    panel_to_tensors,
    roc_auc,
)


def test_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    y = rng.random(60) < 0.3
    p = np.round(rng.random(60), 1)  # ties
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0)
             for a, b in itertools.product(p[y], p[~y])]
    assert roc_auc(y, p) == pytest.approx(np.mean(pairs))
    assert np.isnan(roc_auc(np.zeros(3), np.ones(3)))


def test_log_loss_and_ece():
    y = np.array([1, 0, 1, 0])
    assert log_loss(y, np.full(4, 0.5)) == pytest.approx(np.log(2))
    assert expected_calibration_error(y, np.full(4, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(4, 0.9)) == pytest.approx(0.4)


def _panel():
    rows = [  # user 1: periods 0-3, active until 1; user 2: from period 2
        (1, 0, 1, 0, 0.0, 0, 0.5, True), (1, 1, 2, 1, 30.0, 1, 0.2, True),
        (1, 2, 0, 0, 0.0, -1, np.nan, False), (1, 3, 0, 0, 0.0, 0, 0.5, False),
        (2, 2, 1, 0, 0.0, 1, 0.5, True), (2, 3, 1, 0, 0.0, 0, 0.5, True),
    ]
    df = pd.DataFrame(rows, columns=["user_id", "period", "visits", "purchases", "revenue",
                                     "action_index", "propensity", "active"])
    for c in ("views", "carts", "favs", "unsubscribes"):
        df[c] = 0
    return df


def test_panel_to_tensors_labels_and_masks():
    d = panel_to_tensors(_panel(), n_actions=2, none_index=0, churn_censor=0)
    assert d.raw.shape == (2, 4, 7) and d.valid.sum() == 6
    assert d.first_period.tolist() == [0, 2]
    # churn: active at t and not at t+1; the last period (3) has no label
    np.testing.assert_array_equal(d.churn[0, :3], [0, 1, 0])
    assert np.isnan(d.churn[0, 3]) and np.isnan(d.churn[1, 1])
    # not logged -> fed and scored as none (what the simulator feeds for a period without a send)
    assert d.action[0, 2] == 0 and d.loss_action[0, 2] == 0
    no_none = panel_to_tensors(_panel(), n_actions=2, none_index=None, churn_censor=0)
    assert no_none.action[0, 2] == -1 and no_none.loss_action[0, 2] == -1
    censored = panel_to_tensors(_panel(), n_actions=2, none_index=0, churn_censor=1)
    assert np.isnan(censored.churn[0, 2]) and censored.churn[0, 1] == 1


def test_panel_errors_name_the_column():
    with pytest.raises(DataValidationError, match="action_index"):
        panel_to_tensors(_panel(), n_actions=1, none_index=0)
    with pytest.raises(DataValidationError, match="active"):
        panel_to_tensors(_panel().drop(columns="active"), n_actions=2, none_index=0)


def test_counterfactual_report_known_answer():
    keys = pd.DataFrame({"user_id": [1, 2], "period": [0, 0]})
    pp = np.array([[0.1, 0.3], [0.2, 0.2]])
    z = np.zeros((2, 2))
    pred = Predictions(("none", "a1"), pp + 0.1, pp, z, z + 0.1, z + 0.01, z + 0.01)
    truth = pd.DataFrame({"user_id": [1, 1, 2, 2], "period": [0, 0, 0, 0],
                          "action": ["none", "a1", "none", "a1"],
                          "p_purchase": [0.1, 0.2, 0.2, 0.3]})
    r = counterfactual_report(keys, pred, truth)
    assert r["mae"]["p_purchase"] == pytest.approx(0.05)
    e = r["effects"]["a1"]["p_purchase"]
    assert e["predicted"] == pytest.approx(0.1) and e["true"] == pytest.approx(0.1)
    assert e["relative_error"] == pytest.approx(0.0, abs=1e-12)


def test_static_encoder_fits_train_users_only():
    from predictors.models import StaticEncoder

    users = pd.DataFrame({"user_id": [1, 2, 3], "age": [20.0, 40.0, np.nan],
                          "region": ["n", "s", "w"],
                          "signup": pd.to_datetime(["2024-01-01", "2024-01-11", "2024-01-21"],
                                                   utc=True)})
    enc = StaticEncoder.fit(users.iloc[:2])
    x = enc.transform(users, np.array([3, 1, 99]))
    assert enc.categorical == {"region": ["n", "s"]}
    assert x.shape == (3, 4)
    np.testing.assert_allclose(x[1], [-1.0, -1.0, 1.0, 0.0])  # user 1: age, signup, n, s
    np.testing.assert_allclose(x[0], [0.0, 3.0, 0.0, 0.0])  # NaN age -> mean; unseen region
    np.testing.assert_allclose(x[2], 0.0)  # unknown user
    assert StaticEncoder.from_dict(enc.to_dict()) == enc
