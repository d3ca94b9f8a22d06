"""``agents.ope.accuracy`` and ``nudgegym bench ope-accuracy``: OPE against the true value."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from agents.cli import run_main
from agents.ope.accuracy import (
    AccuracyConfig,
    accuracy_logged_data,
    load_target_policy,
    reward_check,
    run_ope_accuracy,
    true_value,
)
from predictors import ConfigError, read_start_states, true_policy_value
from predictors.synthetic import read_world

TINY = AccuracyConfig(n_users=300, n_periods=6, horizon=3, repeats=2, truth_replicates=4,
                      n_boot=50, estimators=("pdis", "wpdis", "fqe"), fqe_steps=10, seed=3)
POLICIES = ("rule:never", "rule:always:email", "rule:random")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object]:
    root = tmp_path_factory.mktemp("accuracy")
    return run_ope_accuracy(TINY, POLICIES, workdir=root, progress=False), root


def test_result_fields(tiny) -> None:
    res, _ = tiny
    assert res["policies"] == list(POLICIES)
    assert [s["estimator"] for s in res["summary"]] == ["pdis", "wpdis", "fqe", "chosen",
                                                         "chosen-mse"]
    for d in res["datasets"]:
        for row in d["policies"]:
            pick = row["estimates"]["chosen"]
            assert pick["estimator"] in TINY.estimators and pick["reason"]
            assert pick["mean"] == row["estimates"][pick["estimator"]]["mean"]
    for s in res["summary"]:
        assert {"median_rel_error", "spearman_mean", "coverage", "mean_ci_width",
                "meets_goal"} <= set(s)
        assert 0.0 <= s["coverage"] <= 1.0 and s["median_rel_error"] >= 0
    assert len(res["datasets"]) == TINY.repeats
    assert [d["seed"] for d in res["datasets"]] == [3, 4]
    for d in res["datasets"]:
        assert d["obs_check_max_abs_diff"] == 0.0  # panel and world observations agree
        assert d["n_rounds"] == d["n_users"] * TINY.horizon
        for row in d["policies"]:
            assert row["true_se"] > 0
            for e in row["estimates"].values():
                assert e["low"] <= e["mean"] + 1e-9 and e["mean"] <= e["high"] + 1e-9
                assert e["covers"] == (e["low"] <= row["true_value"] <= e["high"])
    assert [p["policy"] for p in res["per_policy"]] == list(POLICIES)


def test_true_value_is_a_direct_world_rollout(tiny) -> None:
    res, root = tiny
    d = res["datasets"][1]
    folder = root / "data_1"
    world, start = read_world(folder), read_start_states(folder, "start")
    holdout = pd.read_parquet(folder / "users.parquet")["holdout"].to_numpy()
    users = np.flatnonzero(~holdout)
    assert len(users) == d["n_users"]
    tiled = start.subset(np.tile(users, TINY.truth_replicates))
    for row, action in zip(d["policies"][:2], (0, 1), strict=True):
        direct = true_policy_value(world, lambda obs, a=action: np.full(len(obs), a), tiled,
                                   TINY.horizon, d["truth_seed"])
        assert row["true_value"] == pytest.approx(direct.mean(), rel=1e-12)


def test_world_reward_matches_the_truth_and_the_panel_reward_does_not(tmp_path) -> None:
    """Coupons sent to unsubscribed users are not redeemed: only the rebuilt reward knows."""
    from predictors import GenerateConfig, generate

    folder = generate(GenerateConfig(n_users=4000, n_periods=3, seed=1), tmp_path / "d")
    world_data, _ = accuracy_logged_data(folder, 3)
    panel_data, _ = accuracy_logged_data(folder, 3, reward="panel")
    check = reward_check(folder, world_data)
    assert abs(check["z"]) < 4
    assert all(abs(a["z"]) < 4 for a in check["by_action"].values())
    gap = world_data.reward - panel_data.reward
    assert (gap > -0.006).all() and (gap > 0.01).any()  # the panel over-charges discounts
    assert (gap[world_data.action < 3] == 0).all()  # only on discount actions


def test_ips_is_unbiased_on_uniform_logs(tmp_path) -> None:
    """Horizon 1 on uniform logs: PDIS is IPS, within a few standard errors of the truth."""
    cfg = AccuracyConfig(n_users=4000, n_periods=1, logging="uniform", horizon=1, repeats=1,
                         truth_replicates=10, n_boot=200, estimators=("pdis",), seed=7)
    res = run_ope_accuracy(cfg, ["rule:always:email", "rule:always:coupon_20"],
                           progress=False)
    for row in res["datasets"][0]["policies"]:
        est = row["estimates"]["pdis"]
        se = np.hypot((est["high"] - est["low"]) / (2 * 1.96), row["true_se"])
        assert abs(est["mean"] - row["true_value"]) < 4 * se
        assert (est["high"] - est["low"]) / 2 < 0.5 * abs(row["true_value"])  # informative


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"horizon": 10, "n_periods": 5}, "horizon"),
    ({"logging": "greedy"}, "logging"),
    ({"estimators": ("ips",)}, "estimators"),
    ({"repeats": 0}, "repeats"),
    ({"alpha": 1.5}, "alpha"),
    ({"world": "nowhere"}, "--world nowhere: neither a preset"),
    ({"q_shrinkage": -1.0}, "q_shrinkage"),
    ({"ridge": 0.0}, "ridge"),
])
def test_config_rejects_bad_values(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        AccuracyConfig(**kwargs)


def test_bench_cli(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = run_main(["bench", "ope-accuracy", "--users", "200", "--periods", "2", "--horizon",
                     "2", "--repeats", "1", "--truth-replicates", "2", "--boot", "20",
                     "--estimator", "pdis", "--estimator", "wpdis", "--with-sim",
                     "--sim-members", "2", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "med.rel.err" in text and "rule:greedy" in text and "chosen estimator" in text
    bench = json.loads((out / "bench.json").read_text())
    assert len(bench["policies"]) == 10
    assert [s["estimator"] for s in bench["summary"]] == ["pdis", "wpdis", "sim", "sim-dr",
                                                          "sim-tdr", "chosen", "chosen-mse"]
    assert bench["datasets"][0]["sim_seconds"]["fit"] > 0
    cells = bench["datasets"][0]["policies"][0]["estimates"]
    assert {cells[e]["kind"] for e in ("sim", "sim-dr", "sim-tdr")} == {"members"}
    assert cells["pdis"]["kind"] == "bootstrap"
    assert 0 <= cells["sim-tdr"]["steps"] <= 2  # the DR corrections it kept (H = 2)
    assert json.loads((out / "config.json").read_text())["command"] == "bench ope-accuracy"


def test_bench_cli_rejects_a_single_member(capsys) -> None:
    code = run_main(["bench", "ope-accuracy", "--users", "200", "--periods", "2", "--horizon",
                     "2", "--with-sim", "--sim-members", "1"])
    assert code != 0
    assert "--sim-members must be 0 or at least 2" in capsys.readouterr().err


def test_inert_world_ties_every_coupon_free_policy(tmp_path) -> None:
    """In the gate's null world (preset ``inert``) no send has any effect: coupon-free rules'
    true values are identical (common random numbers), coupons only give a discount away."""
    from predictors import GenerateConfig, generate, load_world, open_dataset, read_start_states

    folder = generate(GenerateConfig(n_users=200, n_periods=3, seed=0,
                                     world=load_world("inert")),
                      tmp_path / "d")
    world, start = read_world(folder), read_start_states(folder, "start")
    spec = open_dataset(folder).spec
    values = {t: true_value(world, load_target_policy(t, spec, folder), start, np.arange(200),
                            3, 1, 0)[0]
              for t in ("rule:never", "rule:always:email", "rule:always:push",
                        "rule:always:coupon_10")}
    assert values["rule:never"] == values["rule:always:email"] == values["rule:always:push"]
    assert values["rule:always:coupon_10"] < values["rule:never"]


def test_bench_world_is_a_preset_or_a_file(tmp_path) -> None:
    (tmp_path / "w.yaml").write_text("fatigue_decay: 0.85\n")
    for world in ("default", "null", "tired", str(tmp_path / "w.yaml")):
        assert AccuracyConfig(world=world).world == world
    cfg = AccuracyConfig(n_users=200, n_periods=2, horizon=2, repeats=1, truth_replicates=1,
                         n_boot=10, estimators=("pdis",), world="inert", choice=False)
    res = run_ope_accuracy(cfg, ["rule:never", "rule:always:email"], progress=False)
    never, email = (r["true_value"] for r in res["datasets"][0]["policies"])
    assert never == email  # the inert world: an e-mail changes nothing and costs nothing
    assert res["config"]["world"] == "inert"


def test_bench_passes_the_q_penalties_and_scores_the_gate_as_select() -> None:
    def run(**kw):
        cfg = AccuracyConfig(n_users=300, n_periods=3, horizon=3, repeats=1, truth_replicates=1,
                             n_boot=20, estimators=("dr-lin", "wdr-lin"), choice=False,
                             gate_baseline="rule:never", **kw)
        return run_ope_accuracy(cfg, ["rule:never", "rule:always:email", "rule:campaign"],
                                progress=False)

    plain, pooled = run(), run(q_shrinkage=1000.0, ridge=10.0)
    cell = [r["estimates"]["dr-lin"]["mean"] for r in plain["datasets"][0]["policies"]]
    cell_pooled = [r["estimates"]["dr-lin"]["mean"] for r in pooled["datasets"][0]["policies"]]
    assert cell != cell_pooled  # the penalties reach the Q regressions
    assert pooled["config"]["q_shrinkage"] == 1000.0
    (g, _) = plain["gate"]
    assert g["estimator"] == "dr-lin" and g["datasets"] == 1
    # Bonferroni over the two candidates can only remove recommendations
    assert g["any_recommendation_bonferroni"] <= g["any_recommendation"]
