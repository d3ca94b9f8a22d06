"""validate_dataset / load_dataset: every kind of problem, with rows as numbered in the file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictors import DatasetSpec, default_catalog, write_dataset
from predictors.errors import DataValidationError
from predictors.loaders import load_dataset
from predictors.validate import check_dataset, validate_dataset

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "broken_dataset"
SPEC = {"actions": [{"name": "none", "kind": "none"}, {"name": "email", "cost": 0.05}],
        "period": "7D", "has_prices": True}
EVENTS = [
    {"user_id": "u1", "timestamp": "2024-01-01T10:00:00Z", "event_type": "visit", "revenue": ""},
    {"user_id": "u1", "timestamp": "2024-01-02 10:00:00", "event_type": "purchase",
     "revenue": "10.5"},
    {"user_id": "u2", "timestamp": "1704276000", "event_type": "view", "revenue": ""},
    {"user_id": "u2", "timestamp": "2024-01-04T10:00:00+02:00", "event_type": "cart",
     "revenue": ""},
    {"user_id": "u3", "timestamp": "2024-01-05", "event_type": "fav", "revenue": ""},
]
INTERVENTIONS = [
    {"user_id": "u1", "timestamp": "2024-01-01T00:00:00Z", "action": "email", "propensity": "0.5"},
    {"user_id": "u2", "timestamp": "2024-01-01T00:00:00Z", "action": "none", "propensity": "0.5"},
]


def write_table(folder: Path, name: str, rows: list[dict], fmt: str) -> None:
    """Rows of strings as CSV (empty string = empty field) or as a Parquet string table."""
    cols = list(rows[0]) if rows else ["user_id"]
    if fmt == "csv":
        with open(folder / f"{name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    else:
        df = pd.DataFrame(rows, columns=cols, dtype=object).replace({"": None})
        df.to_parquet(folder / f"{name}.parquet", index=False)


def make_dataset(folder: Path, fmt: str, events=EVENTS, interventions=INTERVENTIONS,
                 spec=SPEC) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps(spec))
    write_table(folder, "events", [dict(r) for r in events], fmt)
    if interventions is not None:
        write_table(folder, "interventions", [dict(r) for r in interventions], fmt)
    return folder


def changed(rows: list[dict], index: int, **values: str) -> list[dict]:
    out = [dict(r) for r in rows]
    out[index].update(values)
    return out


# (id, events, interventions, file stem, bad 0-based data row, column, expected text, severity)
CASES = [
    ("empty-user", changed(EVENTS, 2, user_id=""), INTERVENTIONS, "events", 2, "user_id",
     "non-empty user id", "error"),
    ("bad-timestamp", changed(EVENTS, 1, timestamp="next tuesday"), INTERVENTIONS, "events", 1,
     "timestamp", "ISO 8601", "error"),
    ("epoch-milliseconds", changed(EVENTS, 3, timestamp="1704067200000"), INTERVENTIONS,
     "events", 3, "timestamp", "ISO 8601", "error"),
    ("empty-timestamp", changed(EVENTS, 4, timestamp=""), INTERVENTIONS, "events", 4,
     "timestamp", "a timestamp", "error"),
    ("negative-revenue", changed(EVENTS, 1, revenue="-3"), INTERVENTIONS, "events", 1,
     "revenue", "a number >= 0", "error"),
    ("text-revenue", changed(EVENTS, 1, revenue="ten"), INTERVENTIONS, "events", 1, "revenue",
     "finite number", "error"),
    ("nan-revenue", changed(EVENTS, 1, revenue="nan"), INTERVENTIONS, "events", 1, "revenue",
     "finite number", "error"),
    ("purchase-without-revenue", changed(EVENTS, 1, revenue=""), INTERVENTIONS, "events", 1,
     "revenue", "revenue on every purchase", "error"),
    ("empty-event-type", changed(EVENTS, 3, event_type=""), INTERVENTIONS, "events", 3,
     "event_type", "an event type", "error"),
    ("unknown-event-type", changed(EVENTS, 2, event_type="click"), INTERVENTIONS, "events", 2,
     "event_type", "ignored by the panel", "warning"),
    ("duplicate-row", EVENTS + [dict(EVENTS[2])], INTERVENTIONS, "events", len(EVENTS), None,
     "no exact duplicate rows", "warning"),
    ("unknown-action", EVENTS, changed(INTERVENTIONS, 1, action="sms"), "interventions", 1,
     "action", "catalog", "error"),
    ("empty-action", EVENTS, changed(INTERVENTIONS, 0, action=""), "interventions", 0, "action",
     "an action name", "error"),
    ("zero-propensity", EVENTS, changed(INTERVENTIONS, 0, propensity="0"), "interventions", 0,
     "propensity", r"(0, 1]", "error"),
    ("big-propensity", EVENTS, changed(INTERVENTIONS, 1, propensity="1.5"), "interventions", 1,
     "propensity", r"(0, 1]", "error"),
    ("text-propensity", EVENTS, changed(INTERVENTIONS, 1, propensity="high"), "interventions",
     1, "propensity", r"(0, 1]", "error"),
]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_valid_dataset_has_no_problems(tmp_path: Path, fmt: str) -> None:
    folder = make_dataset(tmp_path / "ds", fmt)
    assert validate_dataset(folder) == []
    assert load_dataset(folder).spec.action_names == ["none", "email"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("events", "interventions", "stem", "index", "column", "expected", "severity"),
    [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_is_reported_at_its_row(tmp_path: Path, fmt: str, events, interventions,
                                             stem, index, column, expected, severity) -> None:
    folder = make_dataset(tmp_path / "ds", fmt, events, interventions)
    problems = validate_dataset(folder)
    hits = [p for p in problems if expected in p.expected and p.column == column]
    assert len(hits) == 1, problems
    p = hits[0]
    assert p.file == f"{stem}.{fmt}"
    assert p.row == index + (2 if fmt == "csv" else 1)  # CSV header is line 1
    assert (p.severity, p.count) == (severity, 1)
    others = [q for q in problems if q is not p]
    assert all(q.severity == "warning" for q in others), others
    if severity == "error":
        with pytest.raises(DataValidationError, match=rf"{stem}\.{fmt}, row {p.row}") as info:
            load_dataset(folder)
        assert p in info.value.problems
    else:
        with pytest.warns(UserWarning, match=rf"row {p.row}"):
            load_dataset(folder)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_count_and_first_row_of_repeated_problem(tmp_path: Path, fmt: str) -> None:
    events = [dict(EVENTS[0], timestamp=f"2024-01-{d:02d}T00:00:00Z") for d in range(1, 21)]
    for i in (7, 11, 19):
        events[i]["timestamp"] = "soon"
    problems = validate_dataset(make_dataset(tmp_path / "ds", fmt, events))
    (p,) = [p for p in problems if p.column == "timestamp"]
    assert p.count == 3
    assert p.row == 7 + (2 if fmt == "csv" else 1)
    assert p.found == "'soon'"


@pytest.mark.parametrize(
    ("drop", "match"),
    [("event_type", "column 'event_type'"), ("timestamp", "column 'timestamp'"),
     ("revenue", "has_prices|column 'revenue'"), ("user_id", "column 'user_id'")])
def test_missing_column(tmp_path: Path, drop: str, match: str) -> None:
    events = [{k: v for k, v in r.items() if k != drop} for r in EVENTS]
    folder = make_dataset(tmp_path / "ds", "csv", events)
    problems = validate_dataset(folder)
    assert any(p.column == drop and p.row is None for p in problems), problems
    with pytest.raises(DataValidationError, match=match):
        load_dataset(folder)


@pytest.mark.parametrize(
    ("spec_text", "match"),
    [(None, "no such file"), ("{not json", "valid JSON"),
     (json.dumps({**SPEC, "perod": "7D"}), "perod"),
     (json.dumps({**SPEC, "period": "7 days"}), "period"),
     (json.dumps({**SPEC, "origin": "someday"}), "origin")])
def test_bad_dataset_json(tmp_path: Path, spec_text: str | None, match: str) -> None:
    folder = make_dataset(tmp_path / "ds", "csv")
    if spec_text is None:
        (folder / "dataset.json").unlink()
    else:
        (folder / "dataset.json").write_text(spec_text)
    problems = validate_dataset(folder)
    assert any(p.file == "dataset.json" for p in problems), problems
    with pytest.raises(DataValidationError, match=match):
        load_dataset(folder)


def test_missing_events_and_folder(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "ds", "csv")
    (folder / "events.csv").unlink()
    with pytest.raises(DataValidationError, match="events.parquet or events.csv"):
        load_dataset(folder)
    with pytest.raises(DataValidationError, match="a dataset folder"):
        load_dataset(tmp_path / "nope")


def test_both_formats_warns(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "ds", "parquet")
    write_table(folder, "events", EVENTS, "csv")
    (p,) = validate_dataset(folder)
    assert (p.severity, p.file) == ("warning", "events.csv")


def test_csv_lines_follow_blank_lines_quoted_breaks_and_bad_rows(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "ds", "csv")
    (folder / "events.csv").write_bytes(
        b"user_id,timestamp,event_type,revenue\n"          # 1
        b"u1,2024-01-01,visit,\n"                           # 2
        b"\n"                                               # 3 (blank)
        b'u1,"2024-01-02\n",view,\n'                        # 4-5 (quoted line break)
        b"u1,2024-01-02,view,,extra\n"                      # 6 too many values
        b"u1,2024-01-03,purchase,\xff\n"                    # 7 invalid UTF-8
        b"u1,2024-01-03,purchase,-2\n"                      # 8
        b"u1,2024-01-04,cart\n"                             # 9 too few values
        b"u1,2024-01-04,clicked,\n")                        # 10
    rows = {(p.column, p.found.split(":")[0]): p.row for p in validate_dataset(folder)}
    assert rows[("timestamp", "'2024-01-02\\n'")] == 4
    assert rows[(None, "too many columns")] == 6
    assert rows[(None, "invalid encoding")] == 7
    assert rows[("revenue", "'-2'")] == 8
    assert rows[(None, "missing columns")] == 9
    assert rows[("event_type", "'clicked'")] == 10


def test_rows_across_parquet_row_groups_and_long_csv(tmp_path: Path) -> None:
    n, bad = 2500, 2345
    events = [dict(EVENTS[0], timestamp=f"2024-01-01T00:00:{i % 60:02d}Z",
                   user_id=f"u{i}") for i in range(n)]
    events[bad]["revenue"] = "-1"
    pq_dir = tmp_path / "pq"
    make_dataset(pq_dir, "csv", events)
    (pq_dir / "events.csv").unlink()
    pd.DataFrame(events).replace({"": None}).to_parquet(
        pq_dir / "events.parquet", index=False, row_group_size=1000)
    csv_dir = make_dataset(tmp_path / "csv", "csv", events)
    for folder, row in ((pq_dir, bad + 1), (csv_dir, bad + 2)):
        (p,) = [p for p in validate_dataset(folder) if p.column == "revenue"]
        assert p.row == row


def test_typed_parquet_columns(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps(SPEC))
    ts = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True)
    pd.DataFrame({"user_id": np.array([1, 2, 3]), "timestamp": ts,
                  "event_type": ["visit", "purchase", "purchase"],
                  "revenue": [np.nan, -1.0, np.inf]}).to_parquet(folder / "events.parquet")
    pd.DataFrame({"user_id": [1, 2], "timestamp": [1704067200, 1704067200.5],
                  "action": ["email", "none"], "propensity": [0.0, 0.25]}
                 ).to_parquet(folder / "interventions.parquet")
    problems = {(p.column, p.expected.split(" ")[1]): p.row for p in validate_dataset(folder)}
    assert problems == {("revenue", "number"): 2, ("revenue", "finite"): 3,
                        ("propensity", "probability"): 1}


def test_users_table(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "ds", "csv")
    write_table(folder, "users", [{"user_id": "u1", "age": "30"}, {"user_id": "u2", "age": "x"},
                                  {"user_id": "u1", "age": "31"}], "csv")
    (p,) = validate_dataset(folder)
    assert (p.file, p.row, p.column, p.severity) == ("users.csv", 4, "user_id", "error")
    assert "duplicate of row 2" in p.found
    write_table(folder, "users", [{"id": "u1"}], "csv")
    with pytest.raises(DataValidationError, match="users.csv.*column 'user_id'"):
        check_dataset(folder)


def test_broken_fixture_reports_every_problem_at_its_line() -> None:
    got = {(p.file, p.row, p.column, p.severity) for p in validate_dataset(FIXTURE)}
    assert got == {
        ("events.csv", 12, None, "error"),            # too many values
        ("events.csv", 9, "user_id", "error"),
        ("events.csv", 8, "timestamp", "error"),      # 'yesterday' (and epoch ms on line 13)
        ("events.csv", 16, "revenue", "error"),       # 'free'
        ("events.csv", 10, "revenue", "error"),       # -5
        ("events.csv", 11, "revenue", "error"),       # purchase without revenue
        ("interventions.csv", 3, "action", "error"),
        ("interventions.csv", 6, "propensity", "error"),
        ("interventions.csv", 4, "propensity", "error"),
        ("events.csv", 14, "event_type", "warning"),
        ("events.csv", 15, None, "warning"),          # duplicate of line 14
    }


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_contacted_users_without_events_are_not_flagged(tmp_path: Path, fmt: str) -> None:
    """A customer sent a campaign who never came is ordinary, not a warning."""
    folder = make_dataset(tmp_path / "ds", fmt, EVENTS, changed(INTERVENTIONS, 1, user_id="u9"))
    assert validate_dataset(folder) == []


def test_write_dataset_checks_columns_and_content(tmp_path: Path) -> None:
    spec = DatasetSpec(actions=default_catalog())
    events = pd.DataFrame({"user_id": [1], "timestamp": pd.to_datetime(["2024-01-01"], utc=True),
                           "event_type": ["purchase"]})
    with pytest.raises(DataValidationError, match="revenue"):
        write_dataset(tmp_path / "a", spec, events)
    assert not (tmp_path / "a").exists()
    with pytest.raises(DataValidationError, match="revenue on every purchase"):
        write_dataset(tmp_path / "b", spec, events.assign(revenue=[np.nan]))
    assert list((tmp_path / "b").iterdir()) == []
    write_dataset(tmp_path / "c", spec, events.assign(revenue=[3.0]))
    assert load_dataset(tmp_path / "c").events_path.name == "events.parquet"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_loaders_normalise_types(tmp_path: Path, fmt: str) -> None:
    from predictors.loaders import load_events, load_interventions, load_users

    folder = make_dataset(tmp_path / "ds", fmt)
    write_table(folder, "users", [{"user_id": "u1", "age": "30"},
                                  {"user_id": "u2", "age": "41"}], fmt)
    ev = load_events(folder)
    assert list(ev.columns) == ["user_id", "timestamp", "event_type", "revenue"]
    assert str(ev["timestamp"].dtype) == "datetime64[us, UTC]"
    assert ev["timestamp"].tolist() == list(pd.to_datetime(
        ["2024-01-01 10:00", "2024-01-02 10:00", "2024-01-03 10:00", "2024-01-04 08:00",
         "2024-01-05 00:00"], utc=True))
    assert ev["revenue"].tolist()[1] == 10.5 and ev["revenue"].isna().sum() == 4
    assert ev["user_id"].tolist() == ["u1", "u1", "u2", "u2", "u3"]
    iv = load_interventions(folder)
    assert iv["propensity"].dtype == np.float64 and iv["action"].tolist() == ["email", "none"]
    users = load_users(folder)
    assert users["user_id"].tolist() == ["u1", "u2"]
    assert users["age"].astype(int).tolist() == [30, 41]
