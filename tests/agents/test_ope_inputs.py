"""obp-style estimator inputs: plain arrays, a 3-D action_dist and positions."""

import numpy as np
import pytest

from agents.ope import DM, DR, IPS, SNDR, SNIPS, SwitchDR
from agents.ope.inputs import action_dist_at_positions
from agents.ope.synthetic import make_synthetic_bandit


def _bandit(n=2000):
    b = make_synthetic_bandit(n, n_actions=3, dim=2, seed=0)
    return b, b.data


@pytest.mark.parametrize("est", [IPS(), SNIPS(), DR(), SNDR(), SwitchDR(), DM()])
def test_arrays_match_logged_data(est):
    b, data = _bandit()
    q = np.random.default_rng(1).random((data.n_rounds, data.n_actions))
    expected = est.estimate(data, b.action_dist, q if est.requires_reward_model else None)
    got = est.estimate_policy_value(
        reward=data.reward, action=data.action, pscore=data.pscore,
        action_dist=b.action_dist[:, :, None],
        estimated_rewards_by_reg_model=q[:, :, None] if est.requires_reward_model else None)
    assert got == pytest.approx(expected, abs=1e-14)


def test_positions_pick_each_rounds_slice():
    b, data = _bandit()
    n = data.n_rounds
    position = np.arange(n) % 2
    # position 1 holds the target; position 0 holds a different policy
    other = np.tile([1.0, 0.0, 0.0], (n, 1))
    dist3 = np.where(position[:, None, None] == 1, np.stack([other, b.action_dist], 2),
                     np.stack([b.action_dist, other], 2))
    sliced = action_dist_at_positions(dist3, n, position)
    assert np.allclose(sliced, b.action_dist)
    iv = SNIPS().estimate_interval(reward=data.reward, action=data.action, pscore=data.pscore,
                                   action_dist=dist3, position=position, n_boot=50)
    assert iv.low <= iv.mean <= iv.high
    assert iv.mean == pytest.approx(SNIPS().estimate(data, b.action_dist))


def test_dm_without_pscore_and_context_model():
    b, data = _bandit()
    v = DM().estimate_policy_value(reward=data.reward, action=data.action,
                                   action_dist=b.action_dist, context=data.obs)
    assert v == pytest.approx(DM().estimate(data, b.action_dist), abs=1e-12)
    with pytest.raises(ValueError, match="pscore"):
        IPS().estimate_policy_value(reward=data.reward, action=data.action,
                                    action_dist=b.action_dist)


def _dist(n=5, a=3, k=2):
    return np.full((n, a, k), 1.0 / a)


@pytest.mark.parametrize("make, position, match", [
    (lambda d: d[:, :, 0].reshape(-1), None, r"`action_dist` must have shape"),
    (lambda d: d[:4], None, r"`action_dist` must have shape \(5, n_actions, len_list\)"),
    (lambda d: d, None, r"`position` is required"),
    (lambda d: d, np.array([0, 1, 2, 0, 0]), r"`position` must be in \[0, 2\).*row 2"),
    (lambda d: d, np.zeros(4, int), r"`position` must be 1-D with 5 rows"),
    (lambda d: np.where(np.arange(5)[:, None, None] == 3, d * 0.5, d), np.zeros(5, int),
     r"`action_dist` must sum to 1 over actions \(axis 1\); got 0.5 at row 3, position 0"),
    (lambda d: np.where(np.arange(5)[:, None, None] == 2, np.nan, d), np.ones(5, int),
     r"`action_dist` must be finite; got .* at row 2, position 1"),
    (lambda d: np.where(np.arange(5)[:, None, None] == 1, d - 1.0, d), np.ones(5, int),
     r"`action_dist` must be >= 0; .* at row 1"),
])
def test_malformed_action_dist(make, position, match):
    with pytest.raises(ValueError, match=match):
        IPS().estimate_policy_value(reward=np.ones(5), action=np.zeros(5, int),
                                    pscore=np.full(5, 0.5), action_dist=make(_dist()),
                                    position=position)


def test_row_sum_error_names_first_bad_row_only():
    d = _dist(k=1)
    d[2, 0, 0] = 0.9
    d[4, 0, 0] = 0.9
    with pytest.raises(ValueError, match=r"at row 2, position 0"):
        action_dist_at_positions(d, 5)
