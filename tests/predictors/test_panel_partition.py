"""The partitioned panel build equals the single build (ids, formats, origins, executors)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictors import ConfigError, build_panel
from predictors.executors import make_executor
from predictors.panel_partition import build_panel_partitioned
from tests.predictors.test_panel import CATALOG, EVENTS, NAN, SPEC, make

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _random_log(n: int = 3000, n_iv: int = 600, seed: int = 3) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-02-01", tz="UTC").value // 10**9
    kind = rng.choice(np.array(["visit", "view", "cart", "purchase", "fav", "share"]), n)
    events = list(zip(rng.integers(0, 300, n).tolist(),
                      (start + rng.integers(0, 60 * 86400, n)).tolist(), kind.tolist(),
                      np.where(kind == "purchase", rng.gamma(2.0, 10.0, n).round(2), NAN),
                      strict=True))
    # many interventions share a timestamp: ties must resolve in file order as in one build
    ivs = list(zip(rng.integers(0, 320, n_iv).tolist(),
                   (start + 86400 * rng.integers(0, 60, n_iv)).tolist(),
                   rng.choice([a["name"] for a in CATALOG], n_iv).tolist(),
                   rng.uniform(0.05, 1.0, n_iv).tolist(), strict=True))
    def iso(rows: list) -> list:  # ISO text reads the same from CSV and Parquet
        return [(u, pd.Timestamp(t, unit="s", tz="UTC").isoformat(), *rest)
                for u, t, *rest in rows]

    return iso(events), iso(ivs)


@pytest.mark.parametrize("fmt, prefix, origin, partitions", [
    ("parquet", "", SPEC["origin"], 1), ("parquet", "", SPEC["origin"], 8),
    ("csv", "0", None, 3), ("csv", "", None, 8)])
def test_partitioned_equals_single_build(tmp_path: Path, fmt: str, prefix: str,
                                         origin: str | None, partitions: int) -> None:
    events, ivs = _random_log()
    folder = make(tmp_path / "ds", fmt, events, ivs, {**SPEC, "origin": origin},
                  id_prefix=prefix)
    single = build_panel(folder)
    parts = build_panel_partitioned(folder, partitions=partitions)
    pd.testing.assert_frame_equal(parts, single)
    assert single["user_id"].nunique() > 250


def test_no_interventions_and_more_partitions_than_users(tmp_path: Path) -> None:
    folder = make(tmp_path / "ds", events=EVENTS, interventions=None)
    pd.testing.assert_frame_equal(build_panel_partitioned(folder, partitions=16),
                                  build_panel(folder))


def test_early_rows_warn_once(tmp_path: Path) -> None:
    folder = make(tmp_path / "ds", interventions=None, spec={**SPEC,
                                                              "origin": "2024-01-08T00:00:00Z"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_panel_partitioned(folder, partitions=3, validate=False)
    msgs = [str(w.message) for w in caught if "before origin" in str(w.message)]
    assert len(msgs) == 1 and "3 events/interventions" in msgs[0]


def test_through_a_process_pool(tmp_path: Path) -> None:
    events, ivs = _random_log(seed=5)
    folder = make(tmp_path / "ds", "parquet", events, ivs)
    ex = make_executor("local", workers=2)
    try:
        parts = build_panel_partitioned(folder, partitions=4, executor=ex)
    finally:
        ex.close()
    pd.testing.assert_frame_equal(parts, build_panel(folder))


def test_bad_partitions() -> None:
    with pytest.raises(ConfigError, match="`partitions` must be >= 1"):
        build_panel_partitioned("nowhere", partitions=0)
