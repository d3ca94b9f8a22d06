"""Action-window support of a rollout and the support-constrained rule search."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from agents.rule_support import ActionWindowSupport
from agents.tune_rule import TuneConfig, default_space, tune_rule
from agents.tuned_rule import TunedRulePolicy
from predictors import ConfigError, default_catalog, observation_names

NAMES = observation_names()
CATALOG = default_catalog()
A = [a.name for a in CATALOG]
PUSH = A.index("push")


def test_window_counts_and_share() -> None:
    # the log sends a push every other period, never two in a row
    logged = np.tile([PUSH, 0], (50, 4))
    sup = ActionWindowSupport.from_actions(logged, len(A), window=2)
    assert sup.n_windows == 50 * 7
    assert sup.counts[PUSH + 0 * len(A)] == 50 * 4 and sup.counts[0 + PUSH * len(A)] == 50 * 3
    every_week = np.full((10, 6), PUSH)
    every_other = np.tile([PUSH, 0], (10, 3))
    assert sup.share(every_week, min_count=1) == 0.0
    assert sup.share(every_other, min_count=1) == 1.0
    assert sup.share(every_other, min_count=10_000) == 0.0  # too few logged windows
    mixed = np.concatenate([every_week, every_other])
    assert sup.share(mixed, min_count=1) == pytest.approx(0.5)
    # an ended episode's entries (-1) leave their windows out
    ended = every_other.copy()
    ended[:, 3:] = -1
    assert sup.share(ended, min_count=1) == 1.0
    assert sup.share(np.full((3, 1), PUSH), min_count=1) == 1.0  # no complete window


def test_from_panel_keeps_users_apart_and_reads_no_send_as_none() -> None:
    panel = pd.DataFrame({"user_id": [1, 1, 1, 2, 2],
                          "period": [2, 0, 1, 0, 1],
                          "action_index": [PUSH, PUSH, -1, PUSH, PUSH]})
    sup = ActionWindowSupport.from_panel(panel, len(A), A.index("none"), window=2)
    # user 1 in period order: push, none, push; user 2: push, push
    code = {(x, y): x + y * len(A) for x in range(len(A)) for y in range(len(A))}
    assert sup.n_windows == 3
    assert sup.counts[code[(PUSH, 0)]] == 1 and sup.counts[code[(0, PUSH)]] == 1
    assert sup.counts[code[(PUSH, PUSH)]] == 1  # from user 2 only, not across users


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ConfigError, match="window"):
        ActionWindowSupport.from_actions(np.zeros((2, 3), int), len(A), window=0)
    with pytest.raises(ConfigError, match="shorter window"):
        ActionWindowSupport(12, len(A), np.zeros(1, int))
    sup = ActionWindowSupport.from_actions(np.zeros((2, 3), int), len(A), window=2)
    with pytest.raises(ValueError, match="catalog"):
        sup.share(np.full((1, 3), len(A)), min_count=1)
    with pytest.raises(ConfigError, match="action_index"):
        ActionWindowSupport.from_panel(pd.DataFrame({"user_id": [1], "period": [0]}),
                                       len(A), 0, window=2)
    with pytest.raises(ConfigError, match="support_window"):
        TuneConfig(env="world", support_window=4)
    with pytest.raises(ConfigError, match="support_min_share"):
        TuneConfig(env="sim", support_window=4, support_min_share=1.5)


def _obs(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    obs = np.zeros((n, len(NAMES)), np.float32)
    obs[:, NAMES.index("recency")] = rng.integers(0, 27, n) / 26
    obs[:, NAMES.index("since_contact")] = rng.integers(0, 27, n) / 26
    obs[:, NAMES.index("frequency")] = 0.3
    return obs


def _pushy_evaluator(obs: np.ndarray):
    """A shop that pays +1 per push: the best rule pushes every period. The rollout repeats
    the policy's action on the fixed observations for 8 periods."""
    def evaluate(policy):
        a = policy.act(obs, np.random.default_rng(0)).astype(np.int64)
        return SimpleNamespace(returns=(a == PUSH).astype(float) * 8,
                               action=np.repeat(a[:, None], 8, axis=1))

    return evaluate


def test_support_constrained_search_never_picks_unsupported_rules() -> None:
    obs = _obs(200)
    # the log never holds two sends in a row: a rule is admitted when it contacts <= 10% of
    # the users (each user's action repeats over the rollout)
    sup = ActionWindowSupport.from_actions(np.tile([PUSH, 0, 0, 0], (100, 2)), len(A), window=2)
    make = lambda p: TunedRulePolicy(CATALOG, NAMES, **p.__dict__)  # noqa: E731
    base = TuneConfig(env="sim", budget=200 * 26 * 40, n_users=200, population=10, seed=1)
    free = tune_rule(_pushy_evaluator(obs), make, default_space(A), base)
    assert "push" in free.rule and free.value["mean"] > 4
    cfg = TuneConfig(env="sim", budget=200 * 26 * 40, n_users=200, population=10, seed=1,
                     support_window=2, support_min_count=1, support_min_share=0.9)
    res = tune_rule(_pushy_evaluator(obs), make, default_space(A), cfg, support=sup)
    chosen = next(c for c in res.candidates if c["rule"] == res.rule)
    assert chosen["admissible"] and chosen["support"] >= 0.9
    assert res.value["mean"] < free.value["mean"]
    assert all(c["support"] < 0.9 for c in res.candidates if c["value"] > res.value["mean"])
    assert res.candidates[0]["rule"] == res.rule  # admissible candidates rank first
    with pytest.raises(ConfigError, match="ActionWindowSupport"):
        tune_rule(_pushy_evaluator(obs), make, default_space(A), cfg)


def test_log_support_of_a_dataset_and_cli_errors(tmp_path, capsys) -> None:
    from agents.cli import run_main
    from agents.rule_support import log_support
    from predictors import GenerateConfig, generate, open_dataset

    data = generate(GenerateConfig(n_users=60, n_periods=6, seed=0), tmp_path / "data")
    spec = open_dataset(data).spec
    sup = log_support(data, spec, window=3)
    assert sup.n_windows == 60 * (6 - 3 + 1)  # every user's every window, none across users
    assert run_main(["tune-rule", "--data", str(data), "--out", str(tmp_path / "t"),
                     "--support-window", "3", "--users", "20", "--budget", "520"]) == 1
    assert "--support-window needs env 'sim'" in capsys.readouterr().err
