"""``nudgegym bench ope*`` commands: tables on stdout, config.json + bench.json with --out."""

from __future__ import annotations

import json

import pytest
from shared_data import SHARED_DATA  # noqa: E402

from agents.cli import run_main

SHARED = SHARED_DATA


def test_bench_ope_small(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert run_main(["bench", "ope", "--rounds", "5000", "--boot", "20", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for name in ("dm", "ips", "snips", "dr", "sndr", "switch-dr", "total"):
        assert name in text
    bench = json.loads((out / "bench.json").read_text())
    assert [r["estimator"] for r in bench["estimators"]] == [
        "dm", "ips", "snips", "dr", "sndr", "switch-dr"]
    assert bench["total_seconds"] > 0
    assert json.loads((out / "config.json").read_text())["command"] == "bench ope"


def test_bench_ope_rejects_bad_options(capsys) -> None:
    assert run_main(["bench", "ope", "--rounds", "5"]) == 1
    assert "--rounds" in capsys.readouterr().err


def test_bench_ope_obd_reports_missing_data(tmp_path, capsys) -> None:
    assert run_main(["bench", "ope-obd", "--data", str(tmp_path), "--campaign", "men"]) == 1
    assert "OBD log not found" in capsys.readouterr().err


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "obd").is_dir(), reason="shared/data/obd not found")
def test_bench_ope_obd(tmp_path, capsys) -> None:
    out = tmp_path / "obd"
    rc = run_main(["bench", "ope-obd", "--campaign", "men", "--method", "frequency",
                   "--boot", "50", "--out", str(out)])
    assert rc == 0
    assert "on-policy BTS CTR" in capsys.readouterr().out
    results = json.loads((out / "bench.json").read_text())["results"]
    assert results[0]["campaign"] == "men" and len(results[0]["estimates"]) == 6


def test_ope_command_table_plot_and_ess(tiny_synthetic_run, tmp_path) -> None:
    import json

    data, _ = tiny_synthetic_run
    out = tmp_path / "ope"
    rc = run_main(["ope", str(data), "--policy", "rule:never", "--policy", "rule:random",
                   "--no-sequential", "--boot", "30", "--out", str(out)])
    assert rc == 0
    rep = json.loads((out / "ope.json").read_text())
    assert [r["policy"] for r in rep["results"]] == ["rule:never", "rule:random"]
    for res in rep["results"]:
        assert 0 < res["ess"] <= rep["n_rounds"]
        for e in res["estimates"]:
            assert e["low"] <= e["high"]
    assert (out / "ope_decision.png").stat().st_size > 0
