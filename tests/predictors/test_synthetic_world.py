"""The synthetic world's phenomena are real: each assertion fails if its effect is missing.

True values are Monte-Carlo means over many users; differences are asserted beyond 3 standard
errors of the per-user paired difference (runs with the same seed share their random numbers).
"""

from __future__ import annotations

import numpy as np
import pytest

from predictors.synthetic import (
    World,
    greedy_policy,
    sample_start_states,
    schedule_policy,
    segment_schedule_policy,
    true_policy_value,
)

HORIZON = 26
NONE, EMAIL, PUSH, COUPON_10, COUPON_20 = range(5)
WORLD = World()


@pytest.fixture(scope="module")
def start():
    return sample_start_states(WORLD, 12_000, seed=0)


def _returns(start, policy, seed: int = 1, mask=None) -> np.ndarray:
    r = true_policy_value(WORLD, policy, start, HORIZON, seed, oracle=True)
    return r if mask is None else r[mask]


def _beats(a: np.ndarray, b: np.ndarray, factor: float = 1.0) -> bool:
    """mean(a - factor * b) > 3 standard errors (paired over the same start users)."""
    d = a - factor * b
    return d.mean() > 3 * d.std(ddof=1) / np.sqrt(len(d))


def test_expected_outcomes_match_simulated_frequencies(start) -> None:
    state = start.state.copy()
    action = np.random.default_rng(5).integers(0, 5, state.n)
    truth = WORLD.expected_outcomes(state, action)
    out = WORLD.step(state, action, np.random.default_rng(6))
    for sim, p in ((out["visits"], truth.p_visit), (out["purchases"], truth.p_purchase),
                   (out["churned"], truth.p_churn)):
        se = np.sqrt(np.sum(p * (1 - p))) / state.n
        assert abs(sim.mean() - p.mean()) < 4 * se + 1e-9
    assert out["reward"].mean() == pytest.approx(truth.expected_reward.mean(), abs=0.35)


def test_contact_fatigue_email_every_period_loses_to_every_other(start) -> None:
    every = _returns(start, schedule_policy(EMAIL, 1))
    other = _returns(start, schedule_policy(EMAIL, 2))
    assert _beats(other, every)


def test_coupon_conditioning_always_coupon_wins_now_loses_later(start) -> None:
    n = start.n
    first_always = WORLD.expected_outcomes(start.state, np.full(n, COUPON_10)).expected_reward
    first_sparing = WORLD.expected_outcomes(start.state, np.full(n, NONE)).expected_reward
    assert first_always.mean() > first_sparing.mean()  # exact one-period truth, no MC error
    always = _returns(start, schedule_policy(COUPON_10, 1))
    sparing = _returns(start, schedule_policy(COUPON_10, 4, phase=3))
    assert _beats(sparing, always)


def test_best_action_differs_between_segments(start) -> None:
    names = WORLD.config.segment_names
    best = {}
    for seg in ("deal_seeker", "sleeping_dog"):
        mask = start.state.segment == names.index(seg)
        vals = [_returns(start, schedule_policy(a, 2), mask=mask) for a in range(5)]
        order = np.argsort([-v.mean() for v in vals])
        assert _beats(vals[order[0]], vals[order[1]]), (seg, vals)
        best[seg] = int(order[0])
    assert best["deal_seeker"] in (COUPON_10, COUPON_20)
    assert best["sleeping_dog"] == NONE


@pytest.mark.expensive
def test_segment_oracle_beats_best_simple_rule_and_greedy() -> None:
    family = [(NONE, 1)] + [(a, k) for a in range(1, 5) for k in (1, 2, 3, 4, 6, 8)]
    search = sample_start_states(WORLD, 12_000, seed=100)  # choose schedules on one sample
    seg = search.state.segment
    returns = {f: true_policy_value(WORLD, schedule_policy(*f), search, HORIZON, 101,
                                    oracle=True) for f in family}
    best_rule = max(family, key=lambda f: returns[f].mean())
    schedules = {s: max(family, key=lambda f, s=s: returns[f][seg == s].mean())
                 for s in range(len(WORLD.config.segments))}

    evaluate = sample_start_states(WORLD, 30_000, seed=200)  # ... and evaluate on another
    oracle = _returns(evaluate, segment_schedule_policy(schedules), seed=201)
    simple = _returns(evaluate, schedule_policy(*best_rule), seed=201)
    greedy = _returns(evaluate, greedy_policy(WORLD), seed=201)
    assert _beats(oracle, simple, factor=1.1)
    assert _beats(oracle, greedy)


def test_push_reaches_only_app_users(start) -> None:
    opted = start.state.push_opt_in > 0.5
    assert 0.1 < opted.mean() < 0.9  # the default world has both kinds of users
    n = start.n
    push = WORLD.expected_outcomes(start.state, np.full(n, PUSH))
    none = WORLD.expected_outcomes(start.state, np.full(n, NONE))
    off = ~opted
    np.testing.assert_allclose(push.p_visit[off], none.p_visit[off])  # not delivered
    assert np.all(push.p_unsubscribe[off] == 0)
    reach = opted & ~start.state.churned & ~start.state.push_unsub
    assert np.any(push.p_visit[reach] != none.p_visit[reach])


def test_channel_responses_vary_within_a_segment(start) -> None:
    names = WORLD.config.segment_names
    regular = start.state.segment == names.index("regular")
    sd = start.state.email_response[regular].std()
    assert abs(sd - WORLD.config.response_noise) < 0.1
    assert (start.state.email_response[regular] < 0).mean() > 0.05  # some are put off


def test_crm_attributes_reveal_the_latent_response() -> None:
    from predictors.synthetic import sample_start_users

    start, users = sample_start_users(WORLD, 6000, seed=7, observed_periods=0)
    seg = np.array(WORLD.config.segment_names)[start.state.segment]
    coupon = users["first_order_coupon"].to_numpy()
    assert coupon[seg == "deal_seeker"].mean() > 2 * coupon[seg == "loyal"].mean()
    np.testing.assert_array_equal(users["push_opt_in"].to_numpy(), start.state.push_opt_in > 0.5)
    assert (users["loyalty_tier"][seg == "new"] == "none").all()  # no orders before the log
    assert set(users["loyalty_tier"]) <= {"none", "silver", "gold"}


def test_step_reports_its_expectation_and_takes_drawn_uniforms(start) -> None:
    """``expected_reward`` is :meth:`World.expected_outcomes`' exactly; a subset of users given
    its columns of the batch's uniforms steps exactly as inside the batch; a wrong block is
    refused."""
    from predictors.features import take_rows

    state = start.state.subset(np.arange(500))
    action = np.random.default_rng(7).integers(0, WORLD.n_actions, state.n)
    exact = WORLD.expected_outcomes(state, action).expected_reward
    whole = state.copy()
    out = WORLD.step(whole, action, np.random.default_rng(8))
    assert np.array_equal(out["expected_reward"], exact)
    rows = np.flatnonzero(np.random.default_rng(9).random(state.n) < 0.3)
    part = state.subset(rows)
    u = WORLD.draw_uniforms(state.n, np.random.default_rng(8))[:, rows]
    sub = WORLD.step(part, action[rows], None, uniforms=u)
    for key in ("reward", "expected_reward", "visits", "churned", "unsub_email"):
        assert np.array_equal(sub[key], out[key][rows]), key
    assert np.array_equal(part.fatigue, whole.fatigue[rows])
    with pytest.raises(ValueError, match="uniforms"):
        WORLD.step(state.copy(), action, None, uniforms=u)
    # rows taken by a slice are a copy, not a view
    view = take_rows(state.habit, slice(0, 3))
    view[:] = -1.0
    assert (state.habit[:3] != -1.0).all()
