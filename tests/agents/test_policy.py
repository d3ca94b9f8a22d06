"""The common policy interface: every concrete policy through the same checks."""

from __future__ import annotations

import numpy as np
import pytest

from agents.policy import (
    BasePolicy,
    FixedActionPolicy,
    Policy,
    TablePolicy,
    UniformRandomPolicy,
    actions_from_uniforms,
    apply_action_mask,
    sample_actions,
)

N, K = 200, 4
OBS = np.random.default_rng(0).normal(size=(N, 3))
MASK = np.random.default_rng(1).random((N, K)) < 0.6
MASK[np.arange(N), np.arange(N) % K] = True  # every row allows at least one action


def _table() -> np.ndarray:
    t = np.random.default_rng(2).random((N, K))
    return t / t.sum(axis=1, keepdims=True)


POLICIES = {
    "table": lambda: TablePolicy(_table()),
    "table-context-free": lambda: TablePolicy(np.array([0.1, 0.2, 0.3, 0.4])),
    "fixed": lambda: FixedActionPolicy(2, n_actions=K),
    "uniform": lambda: UniformRandomPolicy(K),
}


@pytest.fixture(params=list(POLICIES), ids=list(POLICIES))
def policy(request) -> BasePolicy:
    return POLICIES[request.param]()


def test_conforms_to_protocol(policy) -> None:
    assert isinstance(policy, Policy)
    probs = policy.action_probabilities(OBS)
    assert probs.shape == (N, K)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_mask_zeroes_and_renormalises(policy) -> None:
    probs = policy.action_probabilities(OBS, MASK)
    assert (probs[~MASK] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_act_respects_mask_and_is_seeded(policy) -> None:
    a1 = policy.act(OBS, np.random.default_rng(5), MASK)
    a2 = policy.act(OBS, np.random.default_rng(5), MASK)
    assert a1.shape == (N,) and a1.dtype == np.int64
    np.testing.assert_array_equal(a1, a2)
    assert MASK[np.arange(N), a1].all()


def test_act_samples_from_action_probabilities(policy) -> None:
    obs = np.zeros((20_000, 3))
    if isinstance(policy, TablePolicy) and policy.action_dist.ndim == 2:
        policy = TablePolicy(policy.action_dist[0])
    expected = policy.action_probabilities(obs[:1])[0]
    actions = policy.act(obs, np.random.default_rng(3))
    freq = np.bincount(actions, minlength=K) / len(actions)
    se = np.sqrt(expected * (1 - expected) / len(actions))
    assert (np.abs(freq - expected) <= 4 * se + 1e-12).all(), (freq, expected)


def test_deterministic_policy_gives_one_hot() -> None:
    probs = FixedActionPolicy(1, n_actions=3).action_probabilities(OBS)
    np.testing.assert_array_equal(probs, np.tile([0.0, 1.0, 0.0], (N, 1)))


def test_masked_fixed_action_falls_back_to_uniform_over_allowed() -> None:
    mask = np.array([[True, False, True]])
    probs = FixedActionPolicy(1, n_actions=3).action_probabilities(OBS[:1], mask)
    np.testing.assert_allclose(probs, [[0.5, 0.0, 0.5]])


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: UniformRandomPolicy(0), ValueError, "n_actions"),
        (lambda: FixedActionPolicy(3, n_actions=3), ValueError, r"`action` must be in \[0, 3\)"),
        (lambda: TablePolicy(np.array([[0.5, 0.6]])), ValueError, "sum to 1; row 0"),
        (lambda: TablePolicy(np.array([[1.2, -0.2]])), ValueError, "non-negative"),
        (lambda: TablePolicy(np.ones((2, 2)) / 2).action_probabilities(np.zeros((3, 1))),
         ValueError, "2 rows; got 3"),
        (lambda: UniformRandomPolicy(2).action_probabilities(
            np.zeros((2, 1)), np.array([[True, True], [False, False]])),
         ValueError, "allows no action at row 1"),
        (lambda: UniformRandomPolicy(2).action_probabilities(np.zeros((2, 1)), np.ones((2, 3)) > 0),
         ValueError, "action_mask"),
        (lambda: UniformRandomPolicy(2).action_probabilities(np.zeros((2, 1)), np.ones((2, 2))),
         TypeError, "boolean"),
        (lambda: UniformRandomPolicy(2).act(np.zeros((2, 1)), 0), TypeError, "Generator"),
    ],
)
def test_invalid_input(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()


def test_apply_action_mask_broadcasts_a_single_mask() -> None:
    probs = np.full((3, 3), 1 / 3)
    out = apply_action_mask(probs, np.array([True, True, False]))
    np.testing.assert_allclose(out, np.tile([0.5, 0.5, 0.0], (3, 1)))


def test_actions_from_uniforms_are_sample_actions_draws() -> None:
    probs = _table()
    drawn = sample_actions(probs, np.random.default_rng(3))
    same = actions_from_uniforms(probs, np.random.default_rng(3).random(N))
    assert np.array_equal(drawn, same)
    # u = 0: the first action with positive probability
    assert np.array_equal(actions_from_uniforms(probs, np.zeros(N)), (probs > 0).argmax(axis=1))


def test_exploring_teacher_states_the_distribution_it_draws() -> None:
    """The warm start's behaviour policy (teacher, or uniform with probability eps) gives the
    distribution its draws follow, so it can also be sampled through ``action_probabilities``."""
    from agents.policy import FixedActionPolicy
    from agents.warm_start import _EpsTeacher

    pi = _EpsTeacher(FixedActionPolicy(1, 5), 0.25)
    obs = np.zeros((40_000, 3))
    probs = pi.action_probabilities(obs)
    np.testing.assert_allclose(probs[0], [0.05, 0.8, 0.05, 0.05, 0.05])
    freq = np.bincount(pi.act(obs, np.random.default_rng(0)), minlength=5) / len(obs)
    np.testing.assert_allclose(freq, probs[0], atol=0.01)
