"""Arbitrary small CSV files either load or raise DataValidationError, never anything else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from predictors import PANEL_COLUMNS, build_panel
from predictors.errors import DataValidationError
from predictors.loaders import load_dataset, load_events, load_interventions

VALID = {
    "user_id": ["u1", "7", "42", "007"],
    "timestamp": ["2024-01-01", "2024-01-01T10:00:00Z", "1704067200", "1704200000.5",
                  "2024-01-03 05:00:00+02:00"],
    "event_type": ["visit", "view", "cart", "purchase", "fav", "unsubscribe", "click"],
    "revenue": ["", "1.5", "0", "12"],
    "item_id": ["", "i1", "3"],
    "action": ["none", "email"],
    "propensity": ["", "0.5", "1"],
}
TABLE_COLUMNS = {"events": ["user_id", "timestamp", "event_type", "revenue", "item_id"],
                 "interventions": ["user_id", "timestamp", "action", "propensity"]}
TOKENS = ["u1", "7", "007", "-3", "0", "1.5", "nan", "inf", "", " ", "visit", "purchase",
          "click", "2024-01-01", "2024-02-30", "1704067200000", "-1e308", "1e400", "null",
          "NULL", "email", "none", "sms"]
garbage = st.one_of(st.sampled_from(TOKENS),
                    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                            max_size=8),
                    st.text(alphabet=',"\n\r \t;x1', max_size=6))


@st.composite
def csv_text(draw: st.DrawFn, table: str) -> bytes:
    """Mostly well-formed tables with random flaws: junk or missing columns, bad cells, wrong
    value counts, odd quoting, line endings, or plain binary noise."""
    if draw(st.integers(0, 20)) == 0:
        return draw(st.binary(max_size=60))
    known = TABLE_COLUMNS[table]
    names = draw(st.lists(st.sampled_from(known), min_size=len(known) - 2, unique=True))
    if draw(st.integers(0, 5)) == 0:
        names.append(draw(st.text(max_size=5)))
    if draw(st.integers(0, 3)):
        names = list(dict.fromkeys(known[:3] + names))
    lines = [",".join(names)]
    flaws = draw(st.integers(0, 3))  # 0: clean table
    for _ in range(draw(st.integers(0, 6))):
        n = len(names) + (draw(st.sampled_from([0, 0, 0, -1, 1])) if flaws else 0)
        cells = []
        for k in range(max(n, 0)):
            good = VALID.get(names[k]) if k < len(names) else None
            bad = good is None or (flaws and draw(st.integers(0, 6)) == 0)
            v = draw(garbage) if bad else draw(st.sampled_from(good))
            cells.append(f'"{v}"' if draw(st.integers(0, 3)) == 0 else v)
        lines.append(",".join(cells))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return (newline.join(lines) + draw(st.sampled_from(["", newline]))).encode()


tables = {"events": csv_text("events"),
          "interventions": st.one_of(st.none(), csv_text("interventions")),
          "has_prices": st.booleans()}


SPEC = {"actions": [{"name": "none", "kind": "none"}, {"name": "email"}], "period": "1D"}


def check_loads_or_raises(events: bytes, interventions: bytes | None, has_prices: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "dataset.json").write_text(json.dumps({**SPEC, "has_prices": has_prices}))
        (folder / "events.csv").write_bytes(events)
        if interventions is not None:
            (folder / "interventions.csv").write_bytes(interventions)
        try:
            ds = load_dataset(folder)
        except DataValidationError as e:
            assert e.problems and any(p.severity == "error" for p in e.problems)
            return
        ev = load_events(ds, validate=False)
        assert str(ev["timestamp"].dtype) == "datetime64[us, UTC]"
        assert ev["timestamp"].notna().all()
        assert ev["user_id"].notna().all()
        assert ev["revenue"].dtype == np.float64
        assert not (ev["revenue"] < 0).any()
        iv = load_interventions(ds, validate=False)
        assert iv["action"].isin(["none", "email"]).all()
        panel = build_panel(ds, validate=False)
        assert list(panel.columns) == list(PANEL_COLUMNS)
        counted = ev["event_type"].isin(["visit", "view", "cart", "purchase", "fav",
                                         "unsubscribe"]).sum()
        assert panel[["visits", "views", "carts", "purchases", "favs", "unsubscribes"]
                     ].to_numpy().sum() == counted
        assert isinstance(panel, pd.DataFrame)


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**tables)
def test_csv_loads_or_raises_data_validation_error(events: bytes, interventions: bytes | None,
                                                   has_prices: bool) -> None:
    check_loads_or_raises(events, interventions, has_prices)


@pytest.mark.expensive
@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**tables)
def test_csv_loads_or_raises_data_validation_error_many(events: bytes,
                                                        interventions: bytes | None,
                                                        has_prices: bool) -> None:
    check_loads_or_raises(events, interventions, has_prices)
