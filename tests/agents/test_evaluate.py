"""evaluate: files, paired statistics, common random numbers and the true-world value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents.cli import run_main
from agents.evaluate import EvaluateConfig, evaluate_policies, mean_ci

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mean_ci_covers_the_mean() -> None:
    x = np.random.default_rng(0).normal(3.0, 1.0, 400)
    ci = mean_ci(x)
    assert ci["low"] < 3.0 < ci["high"] and ci["high"] - ci["low"] < 0.3


def test_evaluate_cli_writes_its_files(tiny_synthetic_run, tmp_path: Path) -> None:
    data, pred = tiny_synthetic_run
    ppo = tmp_path / "ppo"
    assert run_main(["train-policy", "--predictor", str(pred), "--data", str(data), "--out",
                     str(ppo), "--timesteps", "256", "--n-envs", "32", "--eval-users", "10",
                     "--device", "cpu", "--no-progress"]) == 0
    out = tmp_path / "eval"
    rc = run_main(["evaluate", "--predictor", str(pred), "--data", str(data),
                   "--policy", "rule:never", "--policy", "rule:always:email",
                   "--policy", "rule:greedy", "--policy", str(ppo), "--out", str(out)])
    assert rc == 0
    for name in ("config.json", "evaluation.json", "evaluation.md", "values.png"):
        assert (out / name).is_file(), name
    assert list(out.glob("learning_curve_*.png"))
    res = json.loads((out / "evaluation.json").read_text())
    assert res["has_truth"] and len(res["policies"]) == 4
    rows = {r["policy"]: r for r in res["policies"]}
    never, email = rows["rule:never"], rows["rule:always:email"]
    assert never["sim"]["contacts"] == 0 and never["sim"]["cost"] == 0
    assert email["sim"]["contacts"] > 0 and email["sim"]["coupons"] == 0
    best = res["best_rule_sim"]
    assert rows[best]["sim"]["vs_best_rule"]["mean"] == 0.0
    for r in rows.values():
        lo, m, hi = (r["true"]["return"][k] for k in ("low", "mean", "high"))
        assert lo <= m <= hi
    assert "rule:greedy" in (out / "evaluation.md").read_text()


def test_common_random_numbers_pair_policies(tiny_synthetic_run, tmp_path: Path) -> None:
    """The same policy twice gives a paired difference of exactly 0 in both worlds."""
    data, pred = tiny_synthetic_run
    res = evaluate_policies(pred, data, ["rule:random", "rule:random:"], tmp_path,
                            EvaluateConfig(max_users=30), progress=False)
    a, b = res["policies"]
    assert a["sim"]["return"] == b["sim"]["return"]
    assert a["true"]["return"] == b["true"]["return"]
    assert b["sim"]["vs_best_rule"]["mean"] == 0.0


def test_unknown_policy_is_a_clear_error(tiny_synthetic_run, tmp_path: Path, capsys) -> None:
    data, pred = tiny_synthetic_run
    rc = run_main(["evaluate", "--predictor", str(pred), "--data", str(data),
                   "--policy", str(tmp_path / "nope"), "--out", str(tmp_path / "e")])
    assert rc == 1 and "train-policy run folder" in capsys.readouterr().err
