"""A dataset cut at an earlier period: its panel is the log as it stood then (nothing leaks)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictors import (
    ActionSpec,
    ConfigError,
    DatasetSpec,
    build_panel,
    cut_dataset,
    open_dataset,
    write_dataset,
)
from predictors.cutoff import period_start

SPEC = DatasetSpec(actions=(ActionSpec("none", 0.0, "none"),), period="7D",
                   origin="2025-01-06T00:00:00+00:00")


def _orders(folder: Path) -> Path:
    # user 1 buys in weeks 0 and 5; user 2 in weeks 1, 2 and 3; user 3 only in week 6
    weeks = {1: [0, 5], 2: [1, 2, 3], 3: [6]}
    rows = [(u, pd.Timestamp("2025-01-06", tz="UTC") + pd.Timedelta(days=7 * w + 2), 10.0)
            for u, ws in weeks.items() for w in ws]
    events = pd.DataFrame(rows, columns=["user_id", "timestamp", "revenue"])
    events["event_type"] = "purchase"
    return write_dataset(folder, SPEC, events)


def test_cut_panel_is_the_log_as_it_stood(tmp_path: Path) -> None:
    data = _orders(tmp_path / "data")
    full = build_panel(open_dataset(data))
    cut = cut_dataset(data, 4, tmp_path / "cut")
    assert period_start(data, 4) == pd.Timestamp("2025-02-03", tz="UTC")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        panel = build_panel(open_dataset(cut))
    assert any("observed_until" in str(w.message) for w in caught)
    assert int(panel["period"].max()) == 3
    assert set(panel["user_id"]) == {1, 2}  # user 3 arrives after the cut
    cols = ["user_id", "period", "purchases", "revenue"]
    early = full.loc[(full["period"] < 4) & full["user_id"].isin([1, 2]), cols]
    pd.testing.assert_frame_equal(panel[cols].reset_index(drop=True),
                                  early.reset_index(drop=True), check_dtype=False)
    # user 1 buys again in week 5: active through week 3 in the full log, not in the cut one
    u1 = panel[panel["user_id"] == 1].set_index("period")["active"]
    assert bool(full.set_index(["user_id", "period"]).loc[(1, 3), "active"])
    assert u1.tolist() == [True, False, False, False]
    assert np.array_equal(panel.loc[panel["user_id"] == 2, "active"].to_numpy(),
                          [True, True, True])


def test_cut_checks(tmp_path: Path) -> None:
    data = _orders(tmp_path / "data")
    with pytest.raises(ConfigError, match="periods"):
        cut_dataset(data, 0, tmp_path / "c0")
    (tmp_path / "there").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        cut_dataset(data, 2, tmp_path / "there")
