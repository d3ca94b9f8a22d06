"""The generator writes the data contract plus truth; propensities are exact; seeds reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictors.contract import read_spec
from predictors.features import HistoryTracker
from predictors.synthetic import CampaignPolicy, GenerateConfig, generate, read_start_states

FILES = ("dataset.json", "events.parquet", "interventions.parquet", "users.parquet",
         "truth/world.json", "truth/users.parquet", "truth/outcomes.parquet",
         "truth/states.parquet")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return generate(GenerateConfig(n_users=400, n_periods=8, seed=7),
                    tmp_path_factory.mktemp("g") / "d")


def test_contract_and_truth_tables(data: Path) -> None:
    spec = read_spec(data)
    assert spec.action_names == ["none", "email", "push", "coupon_10", "coupon_20"]
    assert spec.origin == "2025-01-06T00:00:00Z"
    inter = pd.read_parquet(data / "interventions.parquet")
    assert len(inter) == 400 * 8  # one decision per user-period, none included
    assert inter["propensity"].between(0.05, 1.0).all()
    users = pd.read_parquet(data / "users.parquet")
    assert "segment" not in users.columns
    holdout = users.loc[users["holdout"], "user_id"]
    held = inter[inter["user_id"].isin(holdout)]
    assert 0.03 < users["holdout"].mean() < 0.2
    assert (held["action"] == "none").all() and (held["propensity"] == 1.0).all()
    events = pd.read_parquet(data / "events.parquet")
    buys = events[events["event_type"] == "purchase"]
    assert (buys["revenue"] > 0).all() and events.loc[
        events["event_type"] != "purchase", "revenue"].isna().all()
    assert events.loc[events["event_type"] == "unsubscribe", "item_id"].isna().all()
    outcomes = pd.read_parquet(data / "truth" / "outcomes.parquet")
    assert len(outcomes) == 400 * 8 * 5
    assert {"p_visit", "p_purchase", "expected_revenue", "p_churn",
            "p_unsubscribe"} <= set(outcomes.columns)
    assert (outcomes["p_purchase"] <= outcomes["p_visit"] + 1e-6).all()
    truth_users = pd.read_parquet(data / "truth" / "users.parquet")
    assert set(truth_users["segment"]) <= {"loyal", "regular", "deal_seeker", "new",
                                           "dormant", "sleeping_dog"}


def test_logged_propensities_equal_logging_policy_probabilities(data: Path) -> None:
    """Replay the observable history and recompute the campaign policy's probabilities."""
    spec = read_spec(data)
    inter = pd.read_parquet(data / "interventions.parquet").sort_values(["timestamp", "user_id"])
    users = pd.read_parquet(data / "users.parquet").sort_values("user_id")
    events = pd.read_parquet(data / "events.parquet")
    period = ((events["timestamp"] - pd.Timestamp(spec.origin)).dt.days // 7).to_numpy()
    n = len(users)
    tracker = HistoryTracker(n, spec)
    policy = CampaignPolicy(spec.actions)
    names = spec.action_names
    for t in range(8):
        rows = inter.iloc[t * n:(t + 1) * n]
        action = rows["action"].map(names.index).to_numpy()
        probs = policy.action_probabilities(tracker.observation(), users["holdout"].to_numpy())
        np.testing.assert_allclose(rows["propensity"], probs[np.arange(n), action])
        ev = events[period == t]
        counts = pd.crosstab(ev["user_id"], ev["event_type"]).reindex(range(n), fill_value=0)
        rev = ev.groupby("user_id")["revenue"].sum().reindex(range(n), fill_value=0.0)
        col = {c: counts[c].to_numpy() if c in counts else np.zeros(n, int)
               for c in ("visit", "view", "cart", "purchase", "unsubscribe")}
        unsub = col["unsubscribe"] > 0
        push = action == names.index("push")
        tracker.update(col["visit"], col["view"], col["cart"], col["purchase"], rev.to_numpy(),
                       action, unsub & ~push, unsub & push)


def test_same_seed_same_files_other_seed_differs(tmp_path: Path) -> None:
    a = generate(GenerateConfig(n_users=150, n_periods=4, seed=1), tmp_path / "a")
    b = generate(GenerateConfig(n_users=150, n_periods=4, seed=1), tmp_path / "b")
    c = generate(GenerateConfig(n_users=150, n_periods=4, seed=2), tmp_path / "c")
    for f in FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "events.parquet").read_bytes() != (c / "events.parquet").read_bytes()
    assert json.loads((a / "truth/world.json").read_text())["generate"]["seed"] == 1


def test_start_states_continue_the_log(data: Path) -> None:
    end = read_start_states(data, "end")
    start = read_start_states(data, "start")
    assert end.n == start.n == 400
    assert (end.history.arrays["tenure"] == 8).all() and (start.history.arrays["tenure"] == 0).all()


def test_uniform_logging_has_equal_propensities(tmp_path: Path) -> None:
    d = generate(GenerateConfig(n_users=100, n_periods=3, logging="uniform"), tmp_path / "u")
    assert np.allclose(pd.read_parquet(d / "interventions.parquet")["propensity"], 0.2)


@pytest.mark.parametrize("kwargs, match", [({"n_users": 0}, "users"),
                                           ({"logging": "greedy"}, "logging"),
                                           ({"holdout_share": 1.0}, "holdout_share")])
def test_bad_config_is_rejected(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        GenerateConfig(**kwargs)
