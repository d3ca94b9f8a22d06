"""Serving features from raw events equal the simulator's observation for the same history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.cli import run_main
from envs.shop_env import load_learned_shop
from predictors import build_panel, observation_names, observations_from_panel, open_dataset
from predictors.current import as_of_period, current_observations
from predictors.errors import ConfigError


def test_end_of_log_features_equal_the_simulators_start_state(tiny_run) -> None:
    data, pred = tiny_run
    feats = current_observations(data)
    shop = load_learned_shop(pred, data, start_users="all")  # starts at the end of the log
    assert feats.attrs["period"] == shop.starts.period
    assert list(feats.columns) == ["user_id", *shop.observation_names]
    got = feats.set_index("user_id").loc[shop.starts.user_ids].to_numpy()
    np.testing.assert_allclose(got, shop.starts.tracker.observation(), atol=1e-6, rtol=0)
    assert len(feats) == len(shop.starts.user_ids)


def test_as_of_a_period_start_equals_the_training_row_of_that_period(tiny_run) -> None:
    data, _ = tiny_run
    ds = open_dataset(data)
    panel = build_panel(ds)
    origin = pd.Timestamp(ds.spec.origin)
    k = 5
    as_of = origin + pd.Timedelta(seconds=k * ds.spec.period_seconds) + pd.Timedelta(hours=30)
    assert as_of_period(ds, as_of) == k  # inside period k: periods 0..k-1 are complete
    feats = current_observations(ds, as_of=str(as_of), panel=panel)
    train = observations_from_panel(panel, ds.spec)
    rows = (panel["period"] == k).to_numpy()
    expect = pd.DataFrame(train[rows], columns=observation_names())
    expect.insert(0, "user_id", panel.loc[rows, "user_id"].to_numpy())
    pd.testing.assert_frame_equal(feats.reset_index(drop=True), expect.reset_index(drop=True),
                                  check_dtype=False)
    with pytest.raises(ConfigError, match="before the end of the first period"):
        current_observations(ds, as_of=str(origin))


def test_readme_export_block_works_as_written(tiny_run, tmp_path: Path, monkeypatch,
                                              capsys) -> None:
    """The README's "Export to serving" commands, from a folder holding a policy run."""
    data, pred = tiny_run
    monkeypatch.chdir(tmp_path)
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data), "--out",
                     "ppo", "--timesteps", "64", "--n-envs", "32", "--eval-users", "10",
                     "--device", "cpu", "--no-progress"]) == 0
    assert run_main("export --policy ppo --format onnx --out policy".split()) == 0
    assert run_main(["features", str(data), "--out", "users.parquet"]) == 0
    assert run_main("score --model policy --input users.parquet --out decisions.parquet"
                    .split()) == 0
    dec = pd.read_parquet("decisions.parquet")
    users = pd.read_parquet("users.parquet")
    assert dec["user_id"].tolist() == users["user_id"].tolist()
    assert dec["propensity"].between(0, 1, inclusive="right").all()
    # in one step from the dataset: the same decisions (same seed)
    assert run_main(["score", "--model", "policy", "--data", str(data), "--out", "d2.parquet"]
                    ) == 0
    pd.testing.assert_frame_equal(pd.read_parquet("d2.parquet"), dec)
