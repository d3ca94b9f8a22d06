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
    assert set(timings) >= {"generate", "train-predictor", "fidelity", "tune-rule", "room",
                            "tune-rule-world", "train-world-dqn", "train-ppo", "train-dqn",
                            "evaluate", "ope", "select", "export", "total"}
    manifest = json.loads((out / "export" / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and (out / "export" / manifest["model_file"]).is_file()
    ev = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert ev["has_truth"] and len(ev["policies"]) == 11
    trained_in = {r["policy"]: r["trained_in"] for r in ev["policies"]}
    assert trained_in[str(out / "world_dqn")] == "world"
    assert trained_in[str(out / "ppo")] == "learned" and trained_in["rule:never"] is None
    # the report opens with the verdict and ends with the commands to run next
    assert report.splitlines()[2] == "## Verdict"
    verdict = report.split("## Verdict")[1].split("\n## ")[0]
    rule = ev["best_rule_sim"]
    assert (f"**Keep the best rule, `{rule}`.**" in verdict) or ("**Use `" in verdict)
    for source in ("simulator:", "off-policy (SNIPS", "selection gate (`nudgegym select`",
                   "in TRUTH", "trained in the TRUE world (`world_dqn`", "the room (TRUE",
                   "How much to trust"):
        assert source in verdict, source
    nxt = report.split("## Next commands")[1]
    assert f"nudgegym score --model {out}/export --input users.parquet" in nxt
    assert f"nudgegym features {out}/data --out users.parquet" in nxt
    # the off-policy stage also valued the rule the simulator ranks first
    ope = json.loads((out / "ope" / "ope.json").read_text())
    assert rule in [r["policy"] for r in ope["results"]]
    assert any(r["policy"].startswith("rule:tuned:") and r["is_rule"] for r in ev["policies"])
    # the evaluation is read against the room: the observable ceiling vs the best tuned rule
    room = json.loads((out / "room" / "room.json").read_text())
    assert ev["room"]["room_pct"] == room["room"]
    assert "observable ceiling" in (out / "evaluation" / "evaluation.md").read_text()
    _check_the_world_reference_is_never_the_candidate(out)
    _check_the_verdict_needs_the_selection_gate(out)


def _check_the_world_reference_is_never_the_candidate(out) -> None:
    """The policy trained in the TRUE world is a reference: never recommended or exported,
    even when it has the highest simulated return."""
    from agents.cli.cmd_quickstart import _best_trained
    from agents.report import verdict

    assert not str(_best_trained(out)).endswith("world_dqn")
    path = out / "evaluation" / "evaluation.json"
    text = path.read_text()
    ev = json.loads(text)
    for r in ev["policies"]:
        if r["trained_in"] == "world":
            r["sim"]["return"]["mean"] = 1e9
    path.write_text(json.dumps(ev))
    try:
        v = verdict(out)
        assert v["candidate"] != "world_dqn" and v["world_reference"]["policy"] == "world_dqn"
        assert not str(_best_trained(out)).endswith("world_dqn")
    finally:
        path.write_text(text)


def _verdict_with(out, sim_low: float, passes: bool) -> str:
    """The report's verdict after setting the candidate's simulated win and the gate's call."""
    from agents.report import verdict, write_report

    cand = verdict(out)["candidate"]
    ev_path, sel_path = out / "evaluation" / "evaluation.json", out / "selection" / "selection.json"
    ev, sel = json.loads(ev_path.read_text()), json.loads(sel_path.read_text())
    for r in ev["policies"]:
        if r["policy"].endswith(cand):
            r["sim"]["vs_best_rule"].update(mean=sim_low + 1.0, low=sim_low, high=sim_low + 2.0)
    for c in sel["candidates"]:
        c["passes"] = passes and c["policy"].endswith(cand)
    sel["recommended"] = next((c["policy"] for c in sel["candidates"] if c["passes"]), None)
    ev_path.write_text(json.dumps(ev))
    sel_path.write_text(json.dumps(sel))
    return write_report(out).read_text().split("## Verdict")[1].split("\n## ")[0]


def _check_the_verdict_needs_the_selection_gate(out) -> None:
    """A simulated win is recommended only when the logs vouch for it (the select stage)."""
    from agents.report import verdict

    ev = json.loads((out / "evaluation" / "evaluation.json").read_text())
    rule, cand = ev["best_rule_sim"], verdict(out)["candidate"]
    # make the one-decision off-policy check agree, so that only the gate decides
    ope = json.loads((out / "ope" / "ope.json").read_text())
    same = next(r["estimates"] for r in ope["results"] if r["policy"] == rule)
    for r in ope["results"]:
        if r["policy"].endswith(cand):
            r["estimates"] = same
    (out / "ope" / "ope.json").write_text(json.dumps(ope))
    kept = _verdict_with(out, sim_low=0.5, passes=False)
    assert f"**Keep the best rule, `{rule}`.**" in kept and "do not vouch" in kept
    used = _verdict_with(out, sim_low=0.5, passes=True)
    assert "**Use `" in used and "the logs vouch for it" in used
    assert f"**Keep the best rule, `{rule}`.**" in _verdict_with(out, sim_low=-0.5, passes=True)
