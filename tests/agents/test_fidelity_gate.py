"""The fidelity gate: rule-ranking metrics, thresholds, verdict and the CLI's fidelity.json."""

from __future__ import annotations

import json

import pytest

from agents.cli import run_main
from agents.fidelity import rank_fidelity
from agents.fidelity_gate import FidelityThresholds, fidelity_gate


def _rows(sims, trues):
    return [{"policy": f"rule:r{i}", "sim": s, "sim_se": 0.1, "true": t, "true_se": 0.1}
            for i, (s, t) in enumerate(zip(sims, trues, strict=True))]


def test_regret_at_1_is_the_true_value_lost_by_the_simulators_pick() -> None:
    r = rank_fidelity(_rows([5.0, 9.0, 7.0], [10.0, 8.0, 9.0]))
    assert r["best_sim"] == "rule:r1" and r["best_true"] == "rule:r0"
    assert r["regret_at_1"] == pytest.approx(0.2)
    assert r["spearman"] == pytest.approx(-1.0)
    row = r["rows"][0]
    assert row["ratio"] == pytest.approx(0.5)
    assert row["ratio_low"] < 0.5 < row["ratio_high"]
    perfect = rank_fidelity(_rows([10.0, 8.0, 9.0], [10.0, 8.0, 9.0]))
    assert perfect["regret_at_1"] == 0 and perfect["ranking_identical"]


def _result(rel, worst, pol=None):
    summ = {k: {"sim": 1.0, "log": 1.0, "rel_error": rel}
            for k in ("visit_rate", "purchase_rate", "revenue_per_user_period")}
    res = {"replay": {"summary": summ, "max_period_rel_error": dict.fromkeys(
        ("visit_rate", "purchase_rate", "revenue_per_user"), worst)}}
    if pol is not None:
        res["policies"] = pol
    return res


def test_gate_verdict_follows_the_thresholds() -> None:
    good = rank_fidelity(_rows(list(range(1, 10)), [x * 1.02 for x in range(1, 10)]))
    ok = fidelity_gate(_result(0.01, 0.05, good))
    assert ok["usable_for_choosing"] and ok["verdict"].startswith("Yes")
    bad_replay = fidelity_gate(_result(0.2, 0.05, good))
    assert not bad_replay["usable_for_choosing"] and bad_replay["ranking_ok"]
    few = rank_fidelity(_rows([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]))
    assert not fidelity_gate(_result(0.01, 0.05, few))["usable_for_choosing"]
    no_truth = fidelity_gate(_result(0.01, 0.05))
    assert no_truth["ranking_ok"] is None and not no_truth["usable_for_choosing"]
    assert fidelity_gate(_result(0.01, 0.05, few),
                         FidelityThresholds(min_rules=3))["usable_for_choosing"]
    with pytest.raises(ValueError, match="min_rules"):
        FidelityThresholds(min_rules=1)


def test_gate_leaves_out_outcomes_the_log_never_shows() -> None:
    res = _result(0.01, 0.05)
    res["replay"]["summary"]["visit_rate"] = {"sim": 0.0, "log": 0.0, "rel_error": None}
    res["replay"]["max_period_rel_error"]["visit_rate"] = None
    gate = fidelity_gate(res)
    assert gate["not_checked"] == ["visit_rate"] and gate["replay_ok"]
    assert not any("visit" in c["check"] for c in gate["checks"])
    # a rate the log shows but the simulator cannot compute is still a failed check
    res["replay"]["summary"]["purchase_rate"]["rel_error"] = None
    assert not fidelity_gate(res)["replay_ok"]


def test_fidelity_cli_writes_every_field(tiny_synthetic_run, tmp_path) -> None:
    data, pred = tiny_synthetic_run
    out = tmp_path / "fid"
    assert run_main(["fidelity", "--predictor", str(pred), "--data", str(data), "--out",
                     str(out), "--horizon", "3", "--replicates", "1",
                     "--policy-replicates", "1"]) == 0
    f = json.loads((out / "fidelity.json").read_text())
    rep, pol, gate = f["replay"], f["policies"], f["gate"]
    for key in ("visit_rate", "purchase_rate", "revenue_per_user", "unsubscribe_rate",
                "survival"):
        assert len(rep["per_period"][key]["sim"]) == len(rep["per_period"][key]["log"]) == 3
    assert {"contacted", "not_contacted"} <= set(rep["by_action"])
    assert rep["summary"]["visit_rate"]["log_rel_se"] > 0
    assert set(rep["per_user_totals"]) == {"visits", "purchases", "revenue"}
    assert pol["n_rules"] == len(pol["rows"]) == 9
    for r in pol["rows"]:
        assert r["ratio_low"] <= r["ratio"] <= r["ratio_high"]
    assert pol["best_sim"] in [r["policy"] for r in pol["rows"]]
    assert pol["regret_at_1"] >= 0
    assert {c["check"] for c in gate["checks"]} >= {"rules: Spearman", "rules: regret@1"}
    assert gate["verdict"].endswith(".") and ". " not in gate["verdict"]  # one sentence
    assert isinstance(gate["usable_for_choosing"], bool)
    report = (out / "report.md").read_text()
    assert gate["verdict"] in report and "fidelity_rules.png" in report
    assert (out / "fidelity_replay.png").is_file() and (out / "fidelity_rules.png").is_file()


def test_fidelity_ranks_the_tuned_rule(tiny_synthetic_run, tmp_path, capsys) -> None:
    """``--policy`` adds a tune-rule run (labelled tuned:FOLDER) and a rule to the ranking."""
    data, pred = tiny_synthetic_run
    tuned = tmp_path / "tuned"
    assert run_main(["tune-rule", "--data", str(data), "--predictor", str(pred), "--env", "world",
                     "--budget", "4000", "--users", "50", "--horizon", "3", "--no-progress",
                     "--out", str(tuned)]) == 0
    out = tmp_path / "fid"
    assert run_main(["fidelity", "--predictor", str(pred), "--data", str(data), "--out",
                     str(out), "--horizon", "3", "--replicates", "1", "--policy-replicates", "1",
                     "--policy", str(tuned), "--policy", "rule:always:push"]) == 0
    pol = json.loads((out / "fidelity.json").read_text())["policies"]
    names = [r["policy"] for r in pol["rows"]]
    assert pol["n_rules"] == 11 and names[-2:] == ["tuned:tuned", "rule:always:push"]
    assert "tuned:tuned" in capsys.readouterr().out
    bad = tmp_path / "bad"
    assert run_main(["fidelity", "--predictor", str(pred), "--data", str(data), "--out",
                     str(bad), "--horizon", "3", "--policy", "rule:no_such_rule"]) != 0
    err = capsys.readouterr().err
    assert "no_such_rule" in err and "Traceback" not in err, err
    assert not bad.exists()
