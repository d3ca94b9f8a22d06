"""build_panel on hand-made data (known answers) and against a plain pandas reference."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictors import PANEL_COLUMNS, build_panel, panel_summary
from predictors.errors import DataValidationError
from predictors.loaders import load_events, load_interventions

# The hand-made log has one 'click' event on purpose (it must not be counted).
pytestmark = pytest.mark.filterwarnings("ignore:.*other event types are ignored")

CATALOG = [{"name": "none", "kind": "none"}, {"name": "email", "cost": 0.05},
           {"name": "coupon", "cost": 0.05, "kind": "discount", "discount_rate": 0.1}]
SPEC = {"actions": CATALOG, "period": "7D", "origin": "2024-01-01T00:00:00Z",
        "has_prices": True}
NAN = float("nan")

# Period k covers 2024-01-01 + 7k days .. + 7 days.
EVENTS = [  # user, timestamp, type, revenue
    (10, "2024-01-01T08:00:00Z", "visit", NAN),
    (10, "2024-01-02T08:00:00Z", "view", NAN),
    (10, "2024-01-02T09:00:00Z", "purchase", 5.0),
    (10, "2024-01-20T09:00:00Z", "cart", NAN),          # period 2 (period 1 is a gap)
    (20, "2024-01-09T00:00:00Z", "fav", NAN),
    (20, "2024-01-10T00:00:00Z", "unsubscribe", NAN),
    (20, "2024-01-10T01:00:00Z", "purchase", 7.5),
    (20, "2024-01-10T02:00:00Z", "purchase", 2.5),
    (30, "2024-01-23T00:00:00Z", "visit", NAN),          # period 3 = last period
    (30, "2024-01-23T00:00:01Z", "click", NAN),          # not counted
]
INTERVENTIONS = [  # user, timestamp, action, propensity
    (10, "2024-01-03T00:00:00Z", "coupon", 0.2),
    (10, "2024-01-01T00:00:00Z", "email", 0.5),          # earlier in the same period: wins
    (20, "2024-01-01T00:00:00Z", "email", 0.4),          # before user 20's first event
    (40, "2024-01-16T00:00:00Z", "none", 0.9),           # a user with no events at all
]
EXPECTED = pd.DataFrame(
    [  # user period visits views carts purchases favs unsubs revenue action index prop active
        (10, 0, 1, 1, 0, 1, 0, 0, 5.0, "email", 1, 0.5, True),
        (10, 1, 0, 0, 0, 0, 0, 0, 0.0, "none", 0, NAN, True),
        (10, 2, 0, 0, 1, 0, 0, 0, 0.0, "none", 0, NAN, True),
        (10, 3, 0, 0, 0, 0, 0, 0, 0.0, "none", 0, NAN, False),
        (20, 0, 0, 0, 0, 0, 0, 0, 0.0, "email", 1, 0.4, True),
        (20, 1, 0, 0, 0, 2, 1, 1, 10.0, "none", 0, NAN, True),
        (20, 2, 0, 0, 0, 0, 0, 0, 0.0, "none", 0, NAN, False),
        (20, 3, 0, 0, 0, 0, 0, 0, 0.0, "none", 0, NAN, False),
        (30, 3, 1, 0, 0, 0, 0, 0, 0.0, "none", 0, NAN, True),
        (40, 2, 0, 0, 0, 0, 0, 0, 0.0, "none", 0, 0.9, False),
        (40, 3, 0, 0, 0, 0, 0, 0, 0.0, "none", 0, NAN, False),
    ], columns=list(PANEL_COLUMNS))


def make(folder: Path, fmt: str = "parquet", events=EVENTS, interventions=INTERVENTIONS,
         spec=SPEC, id_prefix: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps(spec))
    ev = pd.DataFrame(events, columns=["user_id", "timestamp", "event_type", "revenue"])
    tables = {"events": ev}
    if interventions is not None:
        tables["interventions"] = pd.DataFrame(
            interventions, columns=["user_id", "timestamp", "action", "propensity"])
    for name, df in tables.items():
        if id_prefix:
            df["user_id"] = id_prefix + df["user_id"].astype(str)
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        else:
            df = df.assign(timestamp=pd.to_datetime(df["timestamp"], utc=True))
            df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def check_dtypes(panel: pd.DataFrame) -> None:
    assert list(panel.columns) == list(PANEL_COLUMNS)
    for col in ("period", "visits", "views", "carts", "purchases", "favs", "unsubscribes"):
        assert panel[col].dtype == np.int32, col
    assert panel["revenue"].dtype == np.float64
    assert panel["propensity"].dtype == np.float64
    assert panel["action_index"].dtype == np.int16
    assert panel["active"].dtype == bool
    assert pd.api.types.is_string_dtype(panel["action"])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_hand_made_panel(tmp_path: Path, fmt: str) -> None:
    folder = make(tmp_path / "ds", fmt)
    pd.DataFrame({"user_id": [10, 20, 30], "age": [31, 42, 53]}).to_csv(
        folder / "users.csv", index=False)  # a users table must not disturb the panel
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        panel = build_panel(folder)
    # only the unknown event type is flagged; user 30, contacted but never seen, is not
    assert [str(w.message).split("found ")[1] for w in seen] == ["'click'"]
    check_dtypes(panel)
    assert panel["user_id"].dtype == np.int64
    pd.testing.assert_frame_equal(panel, EXPECTED, check_dtype=False)


def test_string_ids_keep_their_text(tmp_path: Path) -> None:
    folder = make(tmp_path / "ds", "csv", id_prefix="0")  # "010" must not become 10
    panel = build_panel(folder)
    assert list(panel["user_id"].unique()) == ["010", "020", "030", "040"]
    pd.testing.assert_frame_equal(panel.drop(columns="user_id"),
                                  EXPECTED.drop(columns="user_id"), check_dtype=False)


def test_without_interventions_action_is_missing(tmp_path: Path) -> None:
    panel = build_panel(make(tmp_path / "ds", interventions=None))
    check_dtypes(panel)
    assert panel["action"].isna().all()
    assert (panel["action_index"] == -1).all()
    assert panel["propensity"].isna().all()
    assert list(panel["user_id"].unique()) == [10, 20, 30]
    assert panel.groupby("user_id")["period"].min().tolist() == [0, 1, 3]


def test_catalog_without_none_leaves_unlogged_periods_missing(tmp_path: Path) -> None:
    spec = {**SPEC, "actions": CATALOG[1:]}
    ivs = [iv for iv in INTERVENTIONS if iv[2] != "none"]
    panel = build_panel(make(tmp_path / "ds", interventions=ivs, spec=spec))
    logged = panel["propensity"].notna()
    assert (panel.loc[logged, "action"] == "email").all()
    assert (panel.loc[logged, "action_index"] == 0).all()
    assert panel.loc[~logged, "action"].isna().all()
    assert (panel.loc[~logged, "action_index"] == -1).all()


def test_origin_defaults_to_first_day_and_early_rows_are_dropped(tmp_path: Path) -> None:
    spec = {**SPEC, "origin": None}
    late = [(u, ts.replace("2024-01-01", "2024-01-02").replace("T08", "T23"), a, r)
            for u, ts, a, r in EVENTS]
    panel = build_panel(make(tmp_path / "a", interventions=None, events=late, spec=spec))
    # first timestamp 2024-01-02T09:00 floors to 2024-01-02: the cart of 2024-01-20 is period 2
    row = panel[(panel["user_id"] == 10) & (panel["carts"] == 1)]
    assert row["period"].tolist() == [2]
    spec = {**SPEC, "origin": "2024-01-08T00:00:00Z"}
    with pytest.warns(UserWarning, match="3 events/interventions before origin"):
        panel = build_panel(make(tmp_path / "b", interventions=None, spec=spec))
    assert panel["purchases"].sum() == 2
    assert panel["period"].min() == 0


def test_matches_pandas_reference_on_random_logs(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n, n_iv = 3000, 400
    start = pd.Timestamp("2024-02-01", tz="UTC").value // 10**9
    types = np.array(["visit", "view", "cart", "purchase", "fav", "unsubscribe", "share"])
    kind = rng.choice(types, n)
    events = list(zip(rng.integers(0, 200, n).tolist(),
                      (start + rng.permutation(60 * 86400)[:n]).tolist(), kind.tolist(),
                      np.where(kind == "purchase", rng.gamma(2.0, 10.0, n).round(2), NAN),
                      strict=True))
    actions = np.array([a["name"] for a in CATALOG])
    ivs = list(zip(rng.integers(0, 220, n_iv).tolist(),
                   (start + 3600 * rng.permutation(60 * 24)[:n_iv]).tolist(),
                   rng.choice(actions, n_iv).tolist(), rng.uniform(0.05, 1.0, n_iv).tolist(),
                   strict=True))
    folder = make(tmp_path / "ds", "csv", events, ivs, {**SPEC, "origin": None})
    with pytest.warns(UserWarning):
        panel = build_panel(folder)
    check_dtypes(panel)
    pd.testing.assert_frame_equal(panel, reference_panel(folder), check_dtype=False)


def reference_panel(folder: Path) -> pd.DataFrame:
    """The panel by its definition, with plain pandas (small data only)."""
    ev, iv = load_events(folder, validate=False), load_interventions(folder, validate=False)
    names = [a["name"] for a in CATALOG]
    origin = min(ev["timestamp"].min(), iv["timestamp"].min()).floor("D")
    week = pd.Timedelta(days=7)
    for df in (ev, iv):
        df["period"] = ((df["timestamp"] - origin) // week).astype(int)
    last = max(ev["period"].max(), iv["period"].max())
    first = pd.concat([ev[["user_id", "period"]], iv[["user_id", "period"]]]).groupby(
        "user_id")["period"].min()
    last_ev = ev.groupby("user_id")["period"].max()
    grid = pd.DataFrame([(u, p) for u, p0 in first.sort_index().items()
                         for p in range(p0, last + 1)], columns=["user_id", "period"])
    counts = ev.groupby(["user_id", "period", "event_type"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=["visit", "view", "cart", "purchase", "fav", "unsubscribe"],
                            fill_value=0)
    counts.columns = ["visits", "views", "carts", "purchases", "favs", "unsubscribes"]
    revenue = ev[ev["event_type"] == "purchase"].groupby(["user_id", "period"])["revenue"].sum()
    logged = iv.sort_values("timestamp", kind="stable").groupby(["user_id", "period"]).first()
    out = grid.join(counts, on=["user_id", "period"]).join(revenue, on=["user_id", "period"])
    out = out.join(logged[["action", "propensity"]], on=["user_id", "period"])
    out = out.fillna({c: 0 for c in [*counts.columns, "revenue"]})
    out["action"] = out["action"].fillna("none")
    out["action_index"] = [names.index(a) for a in out["action"]]
    out["active"] = out["period"] <= out["user_id"].map(last_ev).fillna(-1)
    return out[list(PANEL_COLUMNS)]


def test_bad_data_raises_validation_error_even_without_validation(tmp_path: Path) -> None:
    bad = [(10, "2024-01-01T08:00:00Z", "visit", NAN), (10, "tomorrow", "view", NAN)]
    folder = make(tmp_path / "ds", "csv", bad, None)
    with pytest.raises(DataValidationError, match="row 3, column 'timestamp'"):
        build_panel(folder)
    with pytest.raises(DataValidationError, match="row 3, column 'timestamp'"):
        build_panel(folder, validate=False)
    ivs = [(10, "2024-01-01T00:00:00Z", "sms", 0.5)]
    folder = make(tmp_path / "ds2", "csv", EVENTS, ivs)
    with pytest.raises(DataValidationError, match="action"):
        build_panel(folder, validate=False)


def test_memory_limit_and_threads_are_checked(tmp_path: Path) -> None:
    folder = make(tmp_path / "ds", interventions=None)
    with pytest.raises(ValueError, match="memory_limit"):
        build_panel(folder, memory_limit="lots", validate=False)
    with pytest.raises(ValueError, match="threads"):
        build_panel(folder, threads=0, validate=False)
    small = build_panel(folder, memory_limit="64MB", threads=1, validate=False)
    pd.testing.assert_frame_equal(small, build_panel(folder))


def test_panel_summary(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        s = panel_summary(build_panel(make(tmp_path / "ds")))
    assert (s["users"], s["user_periods"], s["periods"]) == (4, 11, 4)
    assert s["revenue_total"] == pytest.approx(15.0)
    assert s["events"]["purchases"] == 3
    assert s["actions"]["email"] == {"user_periods": 2, "logged": 2, "propensity_min": 0.4,
                                     "propensity_max": 0.5}
