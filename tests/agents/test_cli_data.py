"""CLI: nudgegym validate, inspect and bench panel (exit codes, one-line errors, outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.cli import run_main
from predictors import DatasetSpec, default_catalog, write_dataset

BROKEN = Path(__file__).resolve().parents[1] / "fixtures" / "broken_dataset"


@pytest.fixture
def good_dataset(tmp_path: Path) -> Path:
    ts = pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:00", "2024-01-09 12:00",
                         "2024-01-10 09:00"], utc=True)
    events = pd.DataFrame({"user_id": [1, 1, 2, 2], "timestamp": ts,
                           "event_type": ["visit", "purchase", "view", "purchase"],
                           "revenue": [np.nan, 20.0, np.nan, 10.0]})
    interventions = pd.DataFrame({"user_id": [1, 2], "timestamp": ts[:2],
                                  "action": ["email", "coupon_10"], "propensity": [0.2, 0.4]})
    spec = DatasetSpec(actions=default_catalog(), period="7D")
    return write_dataset(tmp_path / "good", spec, events, interventions)


def test_validate_broken_lists_every_problem_and_fails(capsys) -> None:
    assert run_main(["validate", str(BROKEN)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # problems and the failing summary go to stderr
    lines = captured.err.strip().splitlines()
    assert lines[-1] == "9 errors, 2 warnings"
    severities = [ln.split(":")[0] for ln in lines[:-1]]
    assert severities == ["error"] * 9 + ["warning"] * 2
    assert "error: events.csv, row 8, column 'timestamp'" in "\n".join(lines)


def test_validate_good_dataset_passes_and_writes_problems(good_dataset: Path, tmp_path: Path,
                                                          capsys) -> None:
    out = tmp_path / "run"
    assert run_main(["validate", str(good_dataset), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "0 errors, 0 warnings"
    report = json.loads((out / "problems.json").read_text())
    assert (report["errors"], report["warnings"], report["problems"]) == (0, 0, [])
    assert json.loads((out / "config.json").read_text())["command"] == "validate"


def test_validate_missing_folder(tmp_path: Path, capsys) -> None:
    assert run_main(["validate", str(tmp_path / "nope")]) == 1
    assert "expected a dataset folder" in capsys.readouterr().err


def test_inspect_prints_and_writes_summary(good_dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert run_main(["inspect", str(good_dataset), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "users                2" in text
    assert "purchase=2" in text
    s = json.loads((out / "summary.json").read_text())
    assert (s["users"], s["periods"], s["revenue_total"]) == (2, 2, 30.0)
    assert s["actions"]["coupon_10"]["propensity_max"] == 0.4
    assert s["first_event"] == "2024-01-01T10:00:00Z"
    assert json.loads((out / "config.json").read_text())["command"] == "inspect"


def test_inspect_broken_is_one_line_error(capsys) -> None:
    assert run_main(["inspect", str(BROKEN)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "events.csv, row 12" in err[0]
    assert captured.out == ""


def test_bench_panel_small(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench"
    assert run_main(["bench", "panel", "--events", "20000", "--out", str(out)]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].split()[:3] == ["events", "interventions", "seconds"]
    (result,) = json.loads((out / "bench.json").read_text())["results"]
    assert result["events"] == 20000
    assert result["panel_rows"] >= 20000 // 50  # one row per user at least
    assert result["peak_rss_mb"] >= result["baseline_rss_mb"] > 0
    assert f"{result['panel_rows']:,}" in table[1]
    assert run_main(["bench", "panel", "--events", "0"]) == 1
