"""One-step estimators: one conformance suite for all, plus known-answer tests."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from agents.ope import (
    DM,
    DR,
    IPS,
    SNDR,
    SNIPS,
    LoggedData,
    RidgeRewardModel,
    SwitchDR,
    TabularRewardModel,
    WeightDegeneracyWarning,
    cross_fit_rewards,
    effective_sample_size,
    make_folds,
    weighted_bootstrap,
)
from agents.ope.synthetic import make_synthetic_bandit
from agents.policy import FixedActionPolicy, TablePolicy

CONSISTENT = ("ips", "snips", "dr", "sndr")
ESTIMATORS = [DM(), IPS(), IPS(max_weight=5.0), SNIPS(), DR(), SNDR(), SwitchDR(tau=5.0)]


@pytest.fixture(scope="module")
def bandit():
    return make_synthetic_bandit(20_000, n_actions=3, dim=4, target_temperature=0.5, seed=11)


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: e.name)
def test_conformance(est, bandit) -> None:
    data, dist = bandit.data, bandit.action_dist
    value = est.estimate(data, dist)
    iv = est.interval(data, dist, n_boot=300, seed=4)
    assert np.isfinite(value)
    assert iv.mean == pytest.approx(value)  # the interval's mean is the estimate
    assert iv.low <= iv.mean <= iv.high  # and lies inside it
    assert iv.low < iv.high
    # seeded bootstrap: the same seed reproduces, another seed differs
    assert est.interval(data, dist, n_boot=300, seed=4) == iv
    assert est.interval(data, dist, n_boot=300, seed=5) != iv
    # any policy of the common interface gives the same estimate as its table
    assert est.estimate(data, TablePolicy(dist)) == pytest.approx(value)
    if est.name in CONSISTENT and getattr(est, "max_weight", None) is None:
        assert bandit.true_value in iv, (iv, bandit.true_value)
    else:  # DM, clipping and switching trade bias for variance; only a sanity bound here
        assert abs(value - bandit.true_value) < 0.1 * bandit.true_value


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: e.name)
def test_estimators_are_frozen_with_a_name(est) -> None:
    assert isinstance(est.name, str) and est.name
    with pytest.raises(AttributeError):
        est.name = "other"


def test_ips_is_unbiased_on_uniform_logs() -> None:
    errors = []
    for seed in range(200):
        b = make_synthetic_bandit(500, n_actions=3, dim=2, uniform_logging=True, seed=seed)
        errors.append(IPS().estimate(b.data, b.action_dist) - b.true_value)
    errors = np.array(errors)
    se = errors.std(ddof=1) / np.sqrt(len(errors))
    assert abs(errors.mean()) < 3.5 * se, (errors.mean(), se)


def test_ips_of_a_deterministic_policy_on_uniform_logs_is_the_matched_mean() -> None:
    b = make_synthetic_bandit(5000, n_actions=2, uniform_logging=True, seed=3)
    data = b.data
    target = FixedActionPolicy(1, n_actions=2)
    matched = data.reward[data.action == 1]
    assert IPS().estimate(data, target) == pytest.approx(matched.sum() * 2 / data.n_rounds)
    assert SNIPS().estimate(data, target) == pytest.approx(matched.mean())


def test_dr_with_the_true_reward_model_is_exact_in_expectation(bandit) -> None:
    q = bandit.expected_reward
    dm = DM().estimate(bandit.data, bandit.action_dist, q)
    assert dm == pytest.approx(bandit.true_value)
    dr = DR().interval(bandit.data, bandit.action_dist, q, n_boot=200)
    assert bandit.true_value in dr


def test_switch_dr_interpolates_between_dm_and_dr(bandit) -> None:
    data, dist = bandit.data, bandit.action_dist
    q = cross_fit_rewards(data, RidgeRewardModel())
    assert SwitchDR(tau=1e9).estimate(data, dist, q) == pytest.approx(DR().estimate(data, dist, q))
    assert SwitchDR(tau=1e-9).estimate(data, dist, q) == pytest.approx(DM().estimate(data, dist, q))


def test_clipping_caps_the_weights(bandit) -> None:
    data, dist = bandit.data, bandit.action_dist
    capped = IPS(max_weight=1.0).estimate(data, dist)
    w = dist[np.arange(data.n_rounds), data.action] / data.pscore
    assert capped == pytest.approx(np.mean(np.minimum(w, 1.0) * data.reward))


def test_degenerate_weights_warn() -> None:
    n = 1000
    data = LoggedData(action=np.zeros(n, int), reward=np.ones(n),
                      pscore=np.r_[1e-4, np.ones(n - 1)], n_actions=2)
    dist = np.tile([1.0, 0.0], (n, 1))
    with pytest.warns(WeightDegeneracyWarning, match="effective sample size"):
        IPS().estimate(data, dist)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DM().estimate(data, dist)  # no weights, no warning


def test_effective_sample_size() -> None:
    assert effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert effective_sample_size(np.r_[1.0, np.zeros(9)]) == pytest.approx(1)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: IPS(max_weight=0.0), "max_weight"),
        (lambda: SwitchDR(tau=-1.0), "tau"),
        (lambda: DR(n_folds=1), "n_folds"),
        (lambda: DM(reward_model=object()), "fit_predict"),
        (lambda: SNIPS(min_ess_ratio=2.0), "min_ess_ratio"),
        (lambda: IPS().interval(_tiny(), np.tile([1.0, 0.0], (4, 1)), alpha=0.0), "alpha"),
        (lambda: IPS().interval(_tiny(), np.tile([1.0, 0.0], (4, 1)), n_boot=1), "n_boot"),
        (lambda: DR().estimate(_tiny(), np.tile([1.0, 0.0], (4, 1)), np.zeros((4, 3))),
         r"`estimated_rewards` must have shape \(4, 2\)"),
        (lambda: DR().estimate(_tiny(), np.tile([1.0, 0.0], (4, 1)),
                               np.r_[[[0.0, 0.0]] * 3, [[np.nan, 0]]]),
         "`estimated_rewards` must be finite; .* at row 3"),
        (lambda: IPS().estimate({"action": [0]}, np.ones((1, 1))), "LoggedData"),
    ],
)
def test_invalid_estimator_input(make, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def _tiny() -> LoggedData:
    return LoggedData(action=np.array([0, 1, 0, 1]), reward=np.array([1.0, 0, 1, 0]),
                      pscore=np.full(4, 0.5), n_actions=2)


class _SpyModel:
    """Records which rows (identified by obs = row index) each fit saw and scored."""

    def __init__(self) -> None:
        self.calls: list[tuple[set, set]] = []

    def fit_predict(self, obs_train, action_train, reward_train, obs_test, n_actions):
        self.calls.append((set(obs_train[:, 0].tolist()), set(obs_test[:, 0].tolist())))
        return np.zeros((len(obs_test), n_actions))


def test_cross_fitting_never_scores_a_training_row_and_folds_by_user() -> None:
    n = 60
    user = np.repeat(np.arange(12), 5)
    data = LoggedData(action=np.arange(n) % 2, reward=np.zeros(n), pscore=np.full(n, 0.5),
                      n_actions=2, obs=np.arange(n)[:, None], user_id=user,
                      time_step=np.tile(np.arange(5), 12))
    spy = _SpyModel()
    cross_fit_rewards(data, spy, n_folds=3, seed=0)
    assert len(spy.calls) == 3
    scored = set()
    for train, test in spy.calls:
        assert not train & test
        scored |= test
        users_train = {int(user[i]) for i in train}
        assert not users_train & {int(user[i]) for i in test}
    assert scored == set(range(n))


def test_make_folds_is_seeded() -> None:
    np.testing.assert_array_equal(make_folds(50, 5, seed=1), make_folds(50, 5, seed=1))
    assert not np.array_equal(make_folds(50, 5, seed=1), make_folds(50, 5, seed=2))
    with pytest.raises(ValueError, match="cannot cross-fit 2 users into 3 folds"):
        make_folds(4, 3, seed=0, groups=np.array([1, 1, 2, 2]))


def test_tabular_reward_model_shrinks_cells() -> None:
    obs = np.array([[0], [0], [1], [1]])
    pred = TabularRewardModel(prior_strength=0.0).fit_predict(
        obs, np.array([0, 0, 0, 1]), np.array([1.0, 0.0, 1.0, 0.0]), obs, 2)
    np.testing.assert_allclose(pred[:, 0], [0.5, 0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="integer group key"):
        TabularRewardModel().fit_predict(obs * 0.5, np.zeros(4, int), np.zeros(4), obs, 2)


@pytest.mark.parametrize("scheme", ["double-or-nothing", "poisson"])
def test_bootstrap_matches_the_standard_error_of_a_mean(scheme) -> None:
    rng = np.random.default_rng(0)
    values = rng.exponential(size=(20_000, 1))
    boot = weighted_bootstrap(values, lambda s, c: s[:, 0] / c, n_boot=1000, seed=1,
                              scheme=scheme)
    se = values.std() / np.sqrt(len(values))
    assert boot.std() == pytest.approx(se, rel=0.1)
    assert boot.mean() == pytest.approx(values.mean(), abs=4 * se / np.sqrt(1000) + 1e-9)


def test_bootstrap_schemes_agree_on_interval_width(bandit) -> None:
    a = SNIPS().interval(bandit.data, bandit.action_dist, n_boot=500, scheme="poisson")
    b = SNIPS().interval(bandit.data, bandit.action_dist, n_boot=500, scheme="double-or-nothing")
    assert a.mean == b.mean
    assert a.half_width == pytest.approx(b.half_width, rel=0.15)
    with pytest.raises(ValueError, match="scheme"):
        SNIPS().interval(bandit.data, bandit.action_dist, n_boot=10, scheme="jackknife")
