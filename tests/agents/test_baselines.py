"""Rule baselines: conformance over every rule, reading features by name, greedy's reward model."""

from __future__ import annotations

import numpy as np
import pytest

from agents.baselines import (
    RULES,
    EmailCappedPolicy,
    GreedyUpliftPolicy,
    RFMPolicy,
    WinbackPolicy,
    logged_rewards,
    make_rule,
    parse_rule,
)
from predictors import default_catalog, observation_names

NAMES = observation_names()
CATALOG = default_catalog()
N_ACTIONS = len(CATALOG)


def _obs(n: int, seed: int = 0, names: list[str] = NAMES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    obs = rng.random((n, len(names))).astype(np.float32)
    for binary in ("email_unsubscribed", "push_unsubscribed"):
        if binary in names:
            obs[:, names.index(binary)] = rng.random(n) < 0.2
    return obs


def _fitted_greedy(names: list[str] = NAMES, seed: int = 0) -> GreedyUpliftPolicy:
    rng = np.random.default_rng(seed)
    n = 3000
    obs = _obs(n, seed + 1, names)
    action = rng.integers(N_ACTIONS, size=n)
    freq = obs[:, names.index("frequency")]
    # push pays off for frequent users, email for infrequent ones
    reward = np.where(action == 2, 5 * freq, 0.0) + np.where(action == 1, 5 * (1 - freq), 0.0)
    reward += 0.1 * rng.standard_normal(n)
    pscore = np.full(n, 1.0 / N_ACTIONS)
    return GreedyUpliftPolicy(CATALOG, names).fit(obs, action, reward, pscore)


def _fitted_logged(names: list[str] = NAMES, seed: int = 0):
    """The logged-policy estimate fitted on random observations (action 4 never logged)."""
    from sklearn.linear_model import LogisticRegression

    from agents.logged_policy import LoggedPolicy

    rng = np.random.default_rng(seed)
    x = _obs(600, seed + 2, NAMES)
    model = LogisticRegression(max_iter=200).fit(x, rng.integers(N_ACTIONS - 1, size=600))
    return LoggedPolicy(CATALOG, names, model)


def _all_rules(names: list[str] = NAMES):
    rules = {name: make_rule(name, CATALOG, names) for name in RULES
             if name not in ("always", "greedy", "logged")}
    rules["always:coupon_20"] = make_rule("always", CATALOG, names, action="coupon_20")
    rules["greedy"] = _fitted_greedy(names)
    rules["logged"] = _fitted_logged(names)
    return rules


@pytest.mark.parametrize("rule", sorted(_all_rules()))
def test_rule_conformance(rule: str) -> None:
    pi = _all_rules()[rule]
    obs = _obs(200)
    probs = pi.action_probabilities(obs)
    assert probs.shape == (200, N_ACTIONS)
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0)
    rng = np.random.default_rng(0)
    mask = rng.random((200, N_ACTIONS)) < 0.5
    mask[np.arange(200), rng.integers(N_ACTIONS, size=200)] = True
    masked = pi.action_probabilities(obs, mask)
    assert np.allclose(masked.sum(axis=1), 1.0)
    assert np.all(masked[~mask] == 0)
    acts = pi.act(obs, np.random.default_rng(1), mask)
    assert acts.shape == (200,) and mask[np.arange(200), acts].all()


@pytest.mark.parametrize("rule", sorted(_all_rules()))
def test_rules_read_features_by_name(rule: str) -> None:
    """The same rule gives the same actions when the columns are permuted and extended."""
    perm = list(np.random.default_rng(3).permutation(len(NAMES)))
    names2 = [NAMES[i] for i in perm] + ["static_0", "static_1"]
    obs = _obs(300)
    obs2 = np.concatenate([obs[:, perm], np.ones((300, 2), np.float32)], axis=1)
    a = _all_rules()[rule].action_probabilities(obs)
    b = _all_rules(names2)[rule].action_probabilities(obs2)
    if rule == "greedy":  # refitted on permuted data: same model up to solver rounding
        assert (a.argmax(1) == b.argmax(1)).mean() > 0.99
    else:
        np.testing.assert_array_equal(a, b)


def test_missing_feature_is_named() -> None:
    with pytest.raises(ValueError, match="recency"):
        WinbackPolicy(CATALOG, [n for n in NAMES if n != "recency"])


def test_winback_targets_lapsed_users() -> None:
    obs = np.zeros((3, len(NAMES)), np.float32)
    r = NAMES.index("recency")
    obs[:, r] = np.array([1, 5, 9]) / 26
    pi = WinbackPolicy(CATALOG, NAMES, k=5, action="coupon_20")
    assert pi.act(obs, np.random.default_rng(0)).tolist() == [0, 4, 4]


def test_rfm_segments() -> None:
    obs = np.zeros((3, len(NAMES)), np.float32)
    obs[:, NAMES.index("recency")] = np.array([1, 10, 10]) / 26
    obs[:, NAMES.index("frequency")] = [0.5, 0.5, 0.01]
    pi = RFMPolicy(CATALOG, NAMES, recent=2, frequent=0.2, high_value=1e9)
    assert pi.segment(obs).tolist() == [0, 1, 2]
    assert pi.act(obs, np.random.default_rng(0)).tolist() == [0, 3, 1]


def test_email_capped_respects_gap_and_unsubscribe() -> None:
    obs = np.zeros((3, len(NAMES)), np.float32)
    obs[:, NAMES.index("since_contact")] = np.array([2, 4, 10]) / 26
    obs[2, NAMES.index("email_unsubscribed")] = 1
    pi = EmailCappedPolicy(CATALOG, NAMES, gap=3)
    assert pi.act(obs, np.random.default_rng(0)).tolist() == [0, 1, 0]


def test_greedy_recovers_the_better_action() -> None:
    pi = _fitted_greedy()
    obs = np.full((2, len(NAMES)), 0.5, np.float32)
    obs[:, NAMES.index("frequency")] = [0.95, 0.05]
    assert pi.act(obs, np.random.default_rng(0)).tolist() == [2, 1]
    # masking push away makes the frequent user's best allowed action email, not uniform
    mask = np.array([[True, True, False, True, True]] * 2)
    assert pi.act(obs, np.random.default_rng(0), mask).tolist() == [1, 1]


def test_greedy_ipw_removes_targeting_bias() -> None:
    """Logging sends email mostly where it pays; unweighted vs weighted fits of a constant."""
    rng = np.random.default_rng(0)
    n = 20000
    obs = _obs(n, 5)
    x = obs[:, NAMES.index("frequency")]
    p_email = np.where(x > 0.5, 0.9, 0.1)
    action = np.where(rng.random(n) < p_email, 1, 0)
    reward = np.where(action == 1, 2.0 * (x > 0.5), 0.0)
    pscore = np.where(action == 1, p_email, 1 - p_email)
    pi = GreedyUpliftPolicy(CATALOG, NAMES, features=["tenure"])  # cannot see x
    with pytest.raises(ValueError, match="never logged"):
        pi.fit(obs, action, reward, pscore)
    action[:3] = [2, 3, 4]
    pi.fit(obs, action, reward, pscore)
    mean_email = pi.expected_rewards(obs)[:, 1].mean()
    assert abs(mean_email - 1.0) < 0.1  # the population mean, not the targeted 1.8


def test_logged_rewards_subtracts_cost_and_discount() -> None:
    import pandas as pd

    panel = pd.DataFrame({"action_index": [0, 1, 4, -1], "revenue": [10.0, 10.0, 10.0, 5.0]})
    r = logged_rewards(panel, CATALOG)
    np.testing.assert_allclose(r[:3], [10.0, 9.95, 10 - 0.05 - 2.0])
    assert np.isnan(r[3])


@pytest.mark.parametrize(("text", "error"), [
    ("winback", "rule:NAME"),
    ("rule:nope", "unknown rule"),
    ("rule:always", "needs an action"),
    ("rule:winback:kk=3", "kk"),
    ("rule:never:x=1", "no parameters"),
    ("rule:winback:k=0", "`k`"),
    ("rule:greedy", "dataset"),
])
def test_bad_rule_specs(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        name, params = parse_rule(text)
        make_rule(name, CATALOG, NAMES, **params)
