"""The tuned-rule family and its search: semantics by feature name, parsing, CEM/grid, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from agents.baselines import EmailCappedPolicy, make_rule, parse_rule
from agents.cli import app, run_main
from agents.tune_rule import TuneConfig, default_space, run_tune_rule, tune_rule
from agents.tuned_rule import TunedRuleParams, TunedRulePolicy
from predictors import ConfigError, default_catalog, observation_names

NAMES = observation_names()
CATALOG = default_catalog()
A = [a.name for a in CATALOG]


def _obs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    obs = np.zeros((n, len(NAMES)), np.float32)
    obs[:, NAMES.index("recency")] = rng.integers(0, 27, n) / 26
    obs[:, NAMES.index("since_contact")] = rng.integers(0, 27, n) / 26
    obs[:, NAMES.index("frequency")] = rng.choice([0.0, 0.05, 0.3], n)
    obs[:, NAMES.index("monetary")] = np.log1p(rng.choice([10.0, 50.0, 120.0], n))
    for col in ("email_unsubscribed", "push_unsubscribed"):
        obs[:, NAMES.index(col)] = rng.random(n) < 0.3
    return obs


def test_defaults_equal_email_capped() -> None:
    obs = _obs(500)
    tuned = TunedRulePolicy(CATALOG, NAMES).decide(obs)
    capped = EmailCappedPolicy(CATALOG, NAMES).act(obs, np.random.default_rng(0))
    np.testing.assert_array_equal(tuned, capped)


def test_segments_thresholds_and_fallback() -> None:
    obs = _obs(2000, seed=1)
    pi = TunedRulePolicy(CATALOG, NAMES, active="push", active_gap=2, lapse=8,
                         lapsed="coupon_10", lapsed_gap=5, min_frequency=0.05,
                         min_monetary=40.0, fallback="push")
    a = pi.decide(obs)
    since_buy = np.rint(obs[:, NAMES.index("recency")] * 26)
    since_contact = np.rint(obs[:, NAMES.index("since_contact")] * 26)
    freq = obs[:, NAMES.index("frequency")]
    basket = np.expm1(obs[:, NAMES.index("monetary")])
    email_off = obs[:, NAMES.index("email_unsubscribed")] > 0.5
    push_off = obs[:, NAMES.index("push_unsubscribed")] > 0.5
    eligible = (freq >= 0.05) & (basket >= 40.0)
    lapsed = (since_buy >= 8) | (freq <= 0)
    assert (a[~eligible] == 0).all()
    act_rows = eligible & ~lapsed & (since_contact >= 2)
    assert (a[act_rows & ~push_off] == A.index("push")).all()
    assert (a[act_rows & push_off] == 0).all()  # push blocked, fallback push blocked too
    lap_rows = eligible & lapsed & (since_contact >= 5)
    assert (a[lap_rows & ~email_off] == A.index("coupon_10")).all()
    assert (a[lap_rows & email_off & ~push_off] == A.index("push")).all()
    assert (a[eligible & lapsed & (since_contact < 5)] == 0).all()
    assert act_rows.any() and lap_rows.any() and (lap_rows & email_off & ~push_off).any()


def test_rule_string_round_trip() -> None:
    p = TunedRuleParams(active="coupon_20", active_gap=3, lapse=6, lapsed="push",
                        lapsed_gap=2, min_frequency=0.1, min_monetary=20.0, fallback="email")
    name, params = parse_rule(p.rule_string())
    assert name == "tuned"
    pi = make_rule(name, CATALOG, NAMES, **params)
    assert isinstance(pi, TunedRulePolicy) and pi.params == p


@pytest.mark.parametrize("params", [{"active_gap": 0}, {"lapse": 1.5}, {"min_monetary": -1.0},
                                    {"active": "sms"}, {"colour": 3}])
def test_bad_parameters(params: dict) -> None:
    with pytest.raises(ValueError):
        make_rule("tuned", CATALOG, NAMES, **params)


def _toy_evaluator(obs: np.ndarray):
    """Return per user: +1 for push to active users, +2 for coupon_10 to lapsed ones, -0.5 for
    any other contact; a known optimum inside the default space."""
    since_buy = np.rint(obs[:, NAMES.index("recency")] * 26)
    lapsed = (since_buy >= 6) | (obs[:, NAMES.index("frequency")] <= 0)
    calls = []

    def evaluate(policy) -> np.ndarray:
        calls.append(1)
        a = policy.act(obs, np.random.default_rng(0))
        good = np.where(lapsed, a == A.index("coupon_10"), a == A.index("push"))
        return np.where(good, 1.0 + lapsed, np.where(a == 0, 0.0, -0.5))

    return evaluate, calls


@pytest.mark.parametrize("method", ["cem", "grid"])
def test_search_respects_budget_and_improves(method: str) -> None:
    obs = _obs(300, seed=2)
    evaluate, calls = _toy_evaluator(obs)
    cfg = TuneConfig(budget=300 * 26 * 400, n_users=300, method=method, population=30, seed=0)
    res = tune_rule(evaluate, lambda p: TunedRulePolicy(CATALOG, NAMES, **p.__dict__),
                    default_space(A), cfg)
    assert len(calls) == len(res.curve) <= 400
    assert res.curve[0]["value"] == pytest.approx(evaluate(TunedRulePolicy(CATALOG, NAMES)).mean())
    assert res.vs_default["mean"] > 0.2  # beats the default parameters
    assert res.value["mean"] == max(c["value"] for c in res.candidates)
    bests = [c["best_value"] for c in res.curve]
    assert bests == sorted(bests)
    optimum = evaluate(TunedRulePolicy(CATALOG, NAMES, active="push", active_gap=1, lapse=6,
                                       lapsed="coupon_10", lapsed_gap=1)).mean()
    if method == "cem":  # CEM + coordinate search reach the optimum of the family
        assert res.value["mean"] == pytest.approx(optimum)


def test_search_is_seeded() -> None:
    obs = _obs(200, seed=3)
    runs = []
    for _ in range(2):
        evaluate, _ = _toy_evaluator(obs)
        cfg = TuneConfig(budget=200 * 26 * 40, n_users=200, population=10, seed=5)
        runs.append(tune_rule(evaluate, lambda p: TunedRulePolicy(CATALOG, NAMES, **p.__dict__),
                              default_space(A), cfg).rule)
    assert runs[0] == runs[1]


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="budget"):
        TuneConfig(budget=10, n_users=100)
    with pytest.raises(ConfigError, match="env"):
        TuneConfig(env="moon")


@pytest.fixture(scope="module")
def tiny_shop(tmp_path_factory):
    from predictors import GenerateConfig, generate

    return generate(GenerateConfig(n_users=300, n_periods=8, seed=0),
                    tmp_path_factory.mktemp("shop") / "data")


def test_run_tune_rule_world_and_cli(tiny_shop, tmp_path, capsys) -> None:
    cfg = TuneConfig(budget=300 * 26 * 12, n_users=300, population=6, start_users="all")
    r = run_tune_rule(tiny_shop, tmp_path / "tune", config=cfg)
    assert (tmp_path / "tune" / "search_curve.png").is_file()
    assert (tmp_path / "tune" / "best_rule.txt").read_text().strip() == r["rule"]
    assert r["evaluations"] <= 12 and r["rule"].startswith("rule:tuned:")
    # the run folder is a policy: the evaluate/loader path reads its rule
    from agents.loading import load_policy
    from predictors import open_dataset

    pi = load_policy(str(tmp_path / "tune"), open_dataset(tiny_shop).spec, NAMES)
    assert isinstance(pi, TunedRulePolicy) and pi.name == r["rule"]
    res = CliRunner().invoke(app, ["tune-rule", "--data", str(tiny_shop), "--out",
                                   str(tmp_path / "cli"), "--users", "100", "--budget",
                                   str(100 * 26 * 5)])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "cli" / "tune.json").read_text())["evaluations"] <= 5
    assert run_main(["tune-rule", "--data", str(tiny_shop), "--out", str(tmp_path / "bad"),
                     "--env", "sim"]) == 1
    assert "--predictor" in capsys.readouterr().err
