"""Linear FQE, marginal IS and the DR estimators on a toy MDP with an analytic value."""

import numpy as np
import pytest

from agents.ope import LoggedData
from agents.ope.marginal import MARGINAL_ESTIMATORS, MarginalConfig, joint_replicates
from agents.ope.toy_mdp import ToyMDP

BEHAVIOUR = np.array([[0.7, 0.3], [0.4, 0.6]])
TARGET = np.array([[0.1, 0.9], [0.9, 0.1]])


def _replicates(n_users: int, horizon: int, seed: int, n_boot: int = 100):
    mdp = ToyMDP()
    data = mdp.log(BEHAVIOUR, n_users, horizon, seed)
    rep = joint_replicates(data, {"target": mdp.action_dist(TARGET, data)}, n_boot=n_boot,
                           seed=seed + 100)
    return mdp, rep


@pytest.mark.parametrize("horizon", [3, 12])
def test_every_estimator_close_to_the_analytic_value_and_covered(horizon):
    mdp, rep = _replicates(3000, horizon, seed=1)
    truth = mdp.value(TARGET, horizon)
    # one dataset: a 99% interval must hold the truth (coverage at 95% is checked over
    # repeated datasets in the expensive test below)
    for est in ("fqe-lin", "mis", "mdr"):
        iv = rep.interval(est, "target", alpha=0.01)
        assert iv.kind == "refit"
        assert abs(iv.mean - truth) / truth < 0.03, (est, iv, truth)
        assert truth in iv, (est, iv, truth)
    # per-decision DR has trajectory weights: unbiased but wider; it must still cover, and so
    # must its self-normalised form
    for est in ("dr-lin", "wdr-lin"):
        assert truth in rep.interval(est, "target", alpha=0.01), est


def test_logging_column_is_the_on_policy_value():
    mdp, rep = _replicates(3000, 4, seed=2)
    iv = rep.interval("mis", "logging")
    assert mdp.value(BEHAVIOUR, 4) in iv


def test_target_equal_to_logging_policy_gives_unit_ratios():
    mdp = ToyMDP()
    data = mdp.log(BEHAVIOUR, 2000, 5, seed=3)
    rep = joint_replicates(data, {"same": mdp.action_dist(BEHAVIOUR, data)}, n_boot=20,
                           estimators=("mis",))
    # weights are all 1, so MIS is the plain mean return on every replicate
    assert np.allclose(rep.boot[:, 0, 0], rep.boot[:, 0, 1])
    assert np.isclose(rep.point[0, 0], rep.point[0, 1])


def test_weighted_dr_is_dr_at_unit_weights_and_steadier_under_heavy_weights():
    mdp = ToyMDP()
    data = mdp.log(BEHAVIOUR, 2000, 5, seed=3)
    same = joint_replicates(data, {"same": mdp.action_dist(BEHAVIOUR, data)}, n_boot=20,
                            estimators=("dr-lin", "wdr-lin"))
    # the target is the logging policy: every weight is 1, so normalising changes nothing
    assert np.allclose(same.boot[:, 0, 0], same.boot[:, 1, 0])
    assert np.isclose(same.point[0, 0], same.point[1, 0])
    # a near-deterministic target far from the logging policy over 12 periods: trajectory
    # weights pile up on a few users; self-normalising them must cut the error over datasets
    far = np.array([[0.02, 0.98], [0.98, 0.02]])
    truth, err = mdp.value(far, 12), []
    for seed in range(20):
        data = mdp.log(BEHAVIOUR, 800, 12, seed=40 + seed)
        rep = joint_replicates(data, {"far": mdp.action_dist(far, data)}, n_boot=2, seed=seed,
                               estimators=("dr-lin", "wdr-lin"))
        err.append(rep.point[:, 0] - truth)
    rmse_dr, rmse_wdr = np.sqrt(np.mean(np.square(err), axis=0))
    assert rmse_wdr < 0.8 * rmse_dr, (rmse_wdr, rmse_dr)
    assert rmse_wdr < 0.15 * truth, (rmse_wdr, truth)


def test_validation():
    mdp = ToyMDP()
    data = mdp.log(BEHAVIOUR, 50, 2, seed=0)
    dist = mdp.action_dist(TARGET, data)
    with pytest.raises(ValueError, match="estimators"):
        joint_replicates(data, {"t": dist}, estimators=("nope",))
    with pytest.raises(ValueError, match="logging"):
        joint_replicates(data, {"logging": dist})
    with pytest.raises(ValueError, match="n_boot"):
        joint_replicates(data, {"t": dist}, n_boot=1)
    with pytest.raises(ValueError, match="gamma"):
        MarginalConfig(gamma=2.0)
    no_users = LoggedData(action=data.action, reward=data.reward, pscore=data.pscore,
                          n_actions=2, obs=data.obs)
    with pytest.raises(ValueError, match="user_id"):
        joint_replicates(no_users, {"t": dist})


@pytest.mark.expensive
def test_coverage_over_repeated_toy_datasets():
    horizon, hits = 8, {e: 0 for e in MARGINAL_ESTIMATORS}
    truth = ToyMDP().value(TARGET, horizon)
    for seed in range(20):
        _, rep = _replicates(1500, horizon, seed=10 + seed, n_boot=200)
        for e in MARGINAL_ESTIMATORS:
            hits[e] += truth in rep.interval(e, "target")
    for e in ("fqe-lin", "mis", "mdr"):
        assert hits[e] >= 16, hits
