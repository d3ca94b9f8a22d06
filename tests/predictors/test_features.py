"""Observation features: incremental and batch paths agree; values mean what the names say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictors.contract import DatasetSpec, default_catalog
from predictors.features import (
    FeatureConfig,
    HistoryTracker,
    observation_names,
    observations_from_panel,
)

SPEC = DatasetSpec(actions=default_catalog())


def _random_panel(rng: np.random.Generator, n_users: int, max_periods: int) -> pd.DataFrame:
    rows = []
    for u in range(n_users):
        first = int(rng.integers(0, max_periods))
        for t in range(first, max_periods):
            visits = int(rng.random() < 0.4)
            purchases = int(visits and rng.random() < 0.4) * int(rng.integers(1, 3))
            action = int(rng.integers(-1, SPEC.n_actions))
            rows.append(dict(
                user_id=u, period=t, visits=visits, views=visits * int(rng.integers(1, 4)),
                carts=purchases, purchases=purchases, favs=0,
                unsubscribes=int(action > 0 and rng.random() < 0.08),
                revenue=float(purchases * rng.lognormal(3.5, 0.6)), action=None,
                action_index=action, propensity=0.2, active=True))
    return pd.DataFrame(rows)


def _replay(panel: pd.DataFrame, config: FeatureConfig | None = None) -> np.ndarray:
    """Feed each user's rows to a HistoryTracker and collect the observation before each row."""
    out = np.zeros((len(panel), len(observation_names(config))), dtype=np.float32)
    push = np.array([a.channel == "push" for a in SPEC.actions])
    for _, g in panel.groupby("user_id", sort=False):
        tr = HistoryTracker(1, SPEC, config)
        for i, r in zip(g.index, g.itertuples(), strict=True):
            out[i] = tr.observation()[0]
            unsub = r.unsubscribes > 0
            is_push = r.action_index >= 0 and push[r.action_index]
            tr.update([r.visits], [r.views], [r.carts], [r.purchases], [r.revenue],
                      [r.action_index], [unsub and not is_push], [unsub and is_push])
    return out


@pytest.mark.parametrize("config", [None, FeatureConfig(n_lags=2, shrinkage=0.5)])
def test_incremental_and_batch_paths_are_identical(config: FeatureConfig | None) -> None:
    panel = _random_panel(np.random.default_rng(0), n_users=30, max_periods=20)
    batch = observations_from_panel(panel, SPEC, config)
    assert batch.shape == (len(panel), len(observation_names(config)))
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, _replay(panel, config))


def test_features_describe_the_history() -> None:
    names = observation_names()
    tr = HistoryTracker(2, SPEC)
    obs0 = dict(zip(names, tr.observation()[0], strict=True))
    assert obs0["tenure"] == 0 and obs0["recency"] == 1 and obs0["since_contact"] == 1
    # user 0: bought for 40 after an email; user 1: nothing, no contact, then push unsubscribe
    tr.update([1, 0], [3, 0], [1, 0], [1, 0], [40.0, 0.0], [1, 0], [False, False],
              [False, False])
    tr.update([0, 0], [0, 0], [0, 0], [0, 0], [0.0, 0.0], [0, 2], [False, False],
              [False, True])
    o = {n: v for n, v in zip(names, tr.observation().T, strict=True)}
    assert o["purchased_lag2"][0] == 1 and o["purchased_lag1"][0] == 0
    assert o["contacted_lag2"][0] == 1 and o["contacted_lag1"][1] == 1
    assert o["monetary"][0] == pytest.approx(np.log1p(40.0))
    assert o["frequency"][0] == pytest.approx(0.5)
    assert o["recency"][0] == pytest.approx(2 / 26)
    assert o["push_unsubscribed"].tolist() == [0, 1]
    assert o["buy_rate_contacted"][0] > o["buy_rate_uncontacted"][0]
    assert o["contact_lift"][0] > 0
    # per-channel: user 0 visited in its email period (lift > 0), user 1 saw a push and no visit
    assert o["since_email"].tolist() == pytest.approx([2 / 26, 1.0])
    assert o["since_push"].tolist() == pytest.approx([1.0, 1 / 26])
    assert o["since_coupon"].tolist() == [1.0, 1.0]
    assert o["email_visit_lift"][0] > 0 and o["email_visit_lift"][1] == 0
    assert o["push_visit_lift"][0] == 0 and o["push_visit_lift"][1] == 0
    tr.update([1, 0], [1, 0], [1, 0], [1, 0], [20.0, 0.0], [3, 0], [False, False],
              [False, False])
    o = {n: v for n, v in zip(names, tr.observation().T, strict=True)}
    assert o["since_coupon"][0] == pytest.approx(1 / 26) and o["coupon_buy_lift"][0] > 0
    assert np.all(np.abs(tr.observation()) < 10)


def test_panel_with_gap_is_rejected() -> None:
    panel = _random_panel(np.random.default_rng(1), 3, 6)
    panel = panel.drop(index=panel.index[2]).reset_index(drop=True)
    with pytest.raises(ValueError, match="expected period"):
        observations_from_panel(panel, SPEC)


def test_panel_missing_column_is_rejected() -> None:
    panel = _random_panel(np.random.default_rng(2), 2, 4).drop(columns=["revenue"])
    with pytest.raises(ValueError, match="revenue"):
        observations_from_panel(panel, SPEC)
