"""The main job end to end with tiny budgets: every stage runs and the report is written."""

from __future__ import annotations

import json

from agents.cli import run_main


def test_quickstart_fast_writes_the_report(tmp_path) -> None:
    out = tmp_path / "qs"
    assert run_main(["quickstart", "--fast", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    for section in ("## The shop", "## Behavior predictor", "## Simulated against logged",
                    "## Policies", "## Off-policy evaluation", "## Export"):
        assert section in report, section
    timings = json.loads((out / "quickstart.json").read_text())["timings_seconds"]
    assert set(timings) >= {"generate", "train-predictor", "fidelity", "tune-rule", "train-ppo",
                            "train-dqn", "evaluate", "ope", "export", "total"}
    manifest = json.loads((out / "export" / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and (out / "export" / manifest["model_file"]).is_file()
    ev = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert ev["has_truth"] and len(ev["policies"]) == 10
    assert any(r["policy"].startswith("rule:tuned:") and r["is_rule"] for r in ev["policies"])
