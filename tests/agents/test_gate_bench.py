"""The accuracy bench's gate scoring on constructed replicates: type I, power, and the
null-world share of datasets with a recommendation, alone and with select's Bonferroni."""

import numpy as np
import pytest

from agents.ope.gate_bench import gate_rows, summarize_gate
from agents.ope.marginal import JointReplicates


def _rep(gains: dict[str, float], sd: float, n_boot: int = 4000, seed: int = 0):
    """Replicates whose gain over ``base`` is normal(gain, sd) per candidate, paired."""
    rng = np.random.default_rng(seed)
    names = [*gains, "base"]
    base = rng.normal(10.0, 1.0, n_boot)
    boot = np.stack([base + rng.normal(g, sd, n_boot) for g in gains.values()] + [base], axis=1)
    point = np.array([[10.0 + g for g in gains.values()] + [10.0]])
    return JointReplicates(policies=tuple(names), estimators=("dr-lin",), point=point,
                           boot=boot[:, None, :], n_users=1000)


def _rows(true_values: dict[str, float]):
    return [{"policy": p, "true_value": v} for p, v in true_values.items()]


def test_gate_rows_decide_alone_and_with_bonferroni():
    # gain 2 sd above 0: passes at 5% alone (z 1.645) but not at 5% / 4 (z 2.24)
    rep = _rep({"a": 2.0, "b": -1.0, "c": 0.0, "d": 0.0}, sd=1.0)
    truth = {"a": 11.0, "b": 9.0, "c": 10.0, "d": 10.0, "base": 10.0}
    rows = {r["policy"]: r for r in gate_rows(rep, _rows(truth), "base", 0.95)}
    assert set(rows) == {"a", "b", "c", "d"}
    a = rows["a"]["estimators"]["dr-lin"]
    assert a["recommend"] and not a["recommend_bonferroni"]
    assert a["gain_low_bonferroni"] < a["gain_low"]
    assert a["gain_low"] == pytest.approx(2.0 - 1.645, abs=0.1)
    assert not rows["b"]["estimators"]["dr-lin"]["recommend"]
    assert rows["a"]["true_rel_gain"] == pytest.approx(0.1)


def test_summary_counts_type_i_power_and_datasets():
    truth = {"good": 11.0, "bad": 9.0, "base": 10.0}
    clear = _rep({"good": 5.0, "bad": -5.0}, sd=1.0, seed=1)     # must accept good only
    false = _rep({"good": -5.0, "bad": 5.0}, sd=1.0, seed=2)     # a misleading dataset
    datasets = [{"gate": gate_rows(r, _rows(truth), "base", 0.95)} for r in (clear, clear, false)]
    (s,) = summarize_gate(datasets, ["dr-lin"])
    assert s["power_pairs"] == 3 and s["power"] == pytest.approx(2 / 3)
    assert s["null_pairs"] == 3 and s["type_i"] == pytest.approx(1 / 3)
    assert s["any_recommendation"] == 1.0 == s["any_recommendation_bonferroni"]
    assert summarize_gate([{"gate": []}], ["dr-lin"]) == []
