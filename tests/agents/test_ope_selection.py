"""The selection gate on constructed cases: a clear winner, no winner, a tie."""

import json

import numpy as np
import pytest

from agents.ope.selection import (
    SelectionConfig,
    check_selection,
    select_policy,
    write_selection,
)
from agents.ope.toy_mdp import ToyMDP

BEHAVIOUR = np.array([[0.7, 0.3], [0.4, 0.6]])
GOOD = np.array([[0.0, 1.0], [1.0, 0.0]])  # the best actions in ToyMDP's default rewards
BAD = np.array([[1.0, 0.0], [0.0, 1.0]])
CFG = SelectionConfig(n_boot=100, seed=0)


def _data(mdp=None, users=2000, horizon=4, seed=0):
    mdp = mdp or ToyMDP()
    return mdp, mdp.log(BEHAVIOUR, users, horizon, seed)


def test_clear_winner_is_recommended_over_logging_and_over_a_rule(tmp_path):
    mdp, data = _data()
    assert mdp.value(GOOD, 4) > mdp.value(BEHAVIOUR, 4) > mdp.value(BAD, 4)
    cands = {"good": mdp.action_dist(GOOD, data), "bad": mdp.action_dist(BAD, data)}
    sel = select_policy(data, cands, "logging", CFG)
    assert sel.recommended == "good"
    assert sel.decision.startswith("deploy good")
    by = {c["policy"]: c for c in sel.candidates}
    assert by["good"]["gain_low"] > 0 and not by["bad"]["passes"]
    sel2 = select_policy(data, {"good": cands["good"]}, ("bad", cands["bad"]), CFG)
    assert sel2.recommended == "good" and sel2.baseline == "bad"
    path = write_selection(sel, tmp_path)
    assert (tmp_path / "selection.png").is_file()
    assert json.loads(path.read_text())["recommended"] == "good"
    assert check_selection(path, "good")["recommended"] == "good"
    with pytest.raises(ValueError, match="recommends good, not bad"):
        check_selection(path, "bad")


def test_no_winner_keeps_the_baseline(tmp_path):
    mdp, data = _data()
    sel = select_policy(data, {"bad": mdp.action_dist(BAD, data)}, "logging", CFG)
    assert sel.recommended is None
    assert sel.decision.startswith("keep the baseline (logging)")
    path = write_selection(sel, tmp_path)
    with pytest.raises(ValueError, match="recommends keeping the baseline"):
        check_selection(path, "bad")


def test_tie_is_not_recommended():
    # the candidate IS the baseline rule under another name: the paired gain is exactly 0
    mdp, data = _data()
    same = mdp.action_dist(GOOD, data)
    sel = select_policy(data, {"copy": same}, ("rule", same), CFG)
    assert sel.recommended is None
    assert sel.candidates[0]["gain"] == 0.0 and sel.candidates[0]["gain_low"] == 0.0


@pytest.mark.expensive
def test_null_world_recommends_rarely():
    """Actions do nothing: every policy ties with the logging policy; over 20 datasets the
    gate (95%, Bonferroni over two candidates) may recommend in about 1 (at most 3 allowed)."""
    null = ToyMDP(transition=np.full((2, 2, 2), 0.5), reward=np.array([[1.0, 1.0], [0.0, 0.0]]))
    recommended = 0
    for seed in range(20):
        _, data = _data(null, seed=100 + seed)
        sel = select_policy(data, {"good": null.action_dist(GOOD, data),
                                   "bad": null.action_dist(BAD, data)}, "logging",
                            SelectionConfig(n_boot=200, seed=seed))
        recommended += sel.recommended is not None
    assert recommended <= 3


@pytest.mark.parametrize("estimator", ["dr-lin", "wdr-lin"])
def test_each_unbiased_gate_estimator_accepts_a_winner_and_rejects_a_loser(estimator):
    mdp, data = _data(users=3000, horizon=6, seed=4)
    cfg = SelectionConfig(estimator=estimator, n_boot=100, seed=1)
    good, bad = mdp.action_dist(GOOD, data), mdp.action_dist(BAD, data)
    # the candidate truly gains over the baseline rule: recommended
    assert mdp.value(GOOD, 6) - mdp.value(BAD, 6) > 0.5
    sel = select_policy(data, {"good": good}, ("bad", bad), cfg)
    assert sel.recommended == "good", sel.candidates
    assert sel.config["estimator"] == estimator
    # the same pair the other way round truly loses: rejected, the bound below 0
    sel = select_policy(data, {"bad": bad}, ("good", good), cfg)
    assert sel.recommended is None and sel.candidates[0]["gain_low"] < 0


def test_bonferroni_level_and_validation():
    mdp, data = _data(users=300, horizon=2)
    c = {f"p{i}": mdp.action_dist(GOOD, data) for i in range(4)}
    sel = select_policy(data, c, "logging", CFG)
    assert sel.config["per_candidate_level"] == pytest.approx(0.05 / 4)
    with pytest.raises(ValueError, match="at least one candidate"):
        select_policy(data, {}, "logging", CFG)
    with pytest.raises(ValueError, match="baseline"):
        select_policy(data, c, "rule:never", CFG)
    with pytest.raises(ValueError, match="confidence"):
        SelectionConfig(confidence=1.0)
    with pytest.raises(ValueError, match="estimator.*wdr-lin"):
        SelectionConfig(estimator="wdr")


def test_check_selection_file_errors(tmp_path):
    with pytest.raises(ValueError, match="file not found"):
        check_selection(tmp_path / "nope.json", "x")
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(ValueError, match="not a selection.json"):
        check_selection(tmp_path / "s.json", "x")


def test_select_cli_and_export_refusal(tmp_path, capsys):
    from conftest import make_tiny_dataset

    from agents.cli import run_main

    data = make_tiny_dataset(tmp_path / "data", n_users=300, n_periods=4)
    out = tmp_path / "sel"
    args = ["select", str(data), "--policy", "rule:always:email", "--policy", "rule:never",
            "--baseline", "logging", "--boot", "40", "--out", str(out)]
    assert run_main(args) == 0
    text = capsys.readouterr().out
    assert "lower bound" in text and ("deploy" in text or "keep the baseline" in text)
    sel = json.loads((out / "selection.json").read_text())
    assert {c["policy"] for c in sel["candidates"]} == {"rule:always:email", "rule:never"}
    assert (out / "selection.png").is_file()
    rejected = tmp_path / "rejected.json"
    rejected.write_text(json.dumps({**sel, "recommended": None}))
    assert run_main(["export", "--policy", str(tmp_path / "run"), "--out", str(tmp_path / "x"),
                     "--require-selection", str(rejected)]) == 1
    assert "refusing to export" in capsys.readouterr().err
    assert run_main(["select", str(data), "--policy", "rule:never", "--baseline", "nope",
                     "--out", str(out)]) == 1
    assert "--baseline" in capsys.readouterr().err
    for bad, name in ((["--q-shrinkage", "-1"], "--q-shrinkage"), (["--ridge", "0"], "--ridge")):
        assert run_main(["select", str(data), "--policy", "rule:never", "--out", str(out),
                         *bad]) == 1
        assert f"{name} must be" in capsys.readouterr().err
    out2 = tmp_path / "sel2"
    assert run_main(["select", str(data), "--policy", "rule:never", "--estimator", "wdr-lin",
                     "--q-shrinkage", "1000", "--ridge", "10", "--boot", "20",
                     "--out", str(out2)]) == 0
    cfg = json.loads((out2 / "selection.json").read_text())["config"]
    assert cfg["estimator"] == "wdr-lin"
    assert cfg["model"]["shrinkage"] == 1000 and cfg["model"]["alpha"] == 10
