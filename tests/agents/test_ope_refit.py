"""Refitted DM / DR intervals: the moment-based replicates equal the literal copied-row ones."""

from __future__ import annotations

import numpy as np
import pytest

from agents.ope.data import LoggedData
from agents.ope.one_step import DM, DR
from agents.ope.refit import _replicates_from_copies, _replicates_from_moments, refit_intervals
from agents.ope.reward_model import RidgeRewardModel, ridge_from_moments


def _logs(n_users: int = 60, periods: int = 6, n_actions: int = 4, seed: int = 0) -> LoggedData:
    rng = np.random.default_rng(seed)
    n = n_users * periods
    obs = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 50.0, 1.0]
    obs[:, 2] = np.repeat(rng.normal(size=n_users), periods)    # a per-user constant
    pscore = np.full(n, 1.0 / n_actions)
    action = rng.integers(0, n_actions - 1, n)                   # the last action never logged
    reward = obs[:, 0] * (action == 1) + 0.05 * obs[:, 1] + rng.normal(size=n)
    return LoggedData(action=action, reward=reward, pscore=pscore, n_actions=n_actions,
                      obs=obs, user_id=np.repeat(np.arange(n_users) * 7 + 3, periods),
                      time_step=np.tile(np.arange(periods), n_users))


def _dists(data: LoggedData, k: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(9)
    return {f"p{i}": rng.dirichlet(np.ones(data.n_actions), size=data.n_rounds)
            for i in range(k)}


def test_moment_replicates_equal_the_copied_rows() -> None:
    data = _logs()
    dists = _dists(data)
    inverse = np.unique(data.user_id, return_inverse=True)[1]
    fast = _replicates_from_moments(data, dists, inverse, (DM(), DR()), 12, seed=3)
    slow = _replicates_from_copies(data, dists, inverse, (DM(), DR()), 12, seed=3)
    assert fast.shape == (12, 2, 2)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert np.ptp(fast[:, 0, 1]) > 0                             # the resamples differ


def test_fallback_to_copies_gives_the_same_intervals() -> None:
    data = _logs(seed=1)
    dists = _dists(data, 1)
    a = refit_intervals(data, dists, n_boot=20, seed=0)
    b = refit_intervals(data, dists, n_boot=20, seed=0, max_moment_bytes=0)
    for (dm_a, dr_a), (dm_b, dr_b) in zip(a.values(), b.values(), strict=True):
        assert dm_a.kind == dr_a.kind == "refit"
        for x, y in ((dm_a, dm_b), (dr_a, dr_b)):
            assert x.mean == pytest.approx(y.mean, abs=1e-12)
            assert x.low == pytest.approx(y.low, abs=1e-9)
            assert x.high == pytest.approx(y.high, abs=1e-9)
            assert x.low < x.mean < x.high


def test_ridge_from_weighted_moments_equals_the_fit_on_repeated_rows() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 2)) + [3.0, -1.0]
    action = rng.integers(0, 3, 200)
    y = x @ [1.0, -2.0] + action + rng.normal(size=200)
    w = rng.integers(0, 3, 200)
    rep = np.repeat(np.arange(200), w)
    q_rep = RidgeRewardModel(alpha=2.0).fit_predict(x[rep], action[rep], y[rep], x, 3)
    xt = np.hstack([np.ones((200, 1)), x])                        # any centre: here 0
    gram = np.stack([(xt[action == a] * w[action == a, None]).T @ xt[action == a]
                     for a in range(3)])
    cross = np.stack([xt[action == a].T @ (w * y)[action == a] for a in range(3)])
    q = xt @ ridge_from_moments(gram, cross, 2.0).T
    np.testing.assert_allclose(q, q_rep, atol=1e-8)
