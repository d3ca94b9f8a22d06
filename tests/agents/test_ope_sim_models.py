"""Simulator options of the model-based estimators: truncated DR, members' model spread."""

from __future__ import annotations

import numpy as np
import pytest
from toy_logs import BEHAVIOUR, TARGET, H, toy_logs

from agents.ope.model_based import sim_interval, sim_replicates
from agents.ope.sim_models import SimModelConfig, member_interval, truncation_steps
from agents.ope.toy_mdp import ToyMDP
from predictors import ConfigError


def _fitted(data, users: np.ndarray) -> ToyMDP:
    """The count-based (maximum-likelihood) tabular model of the users ``users``' rows."""
    rows = np.isin(data.user_id, users)
    state = ToyMDP.states(data)
    s, a, r = state[rows], data.action[rows], data.reward[rows]
    nxt = np.full(data.n_rounds, -1)
    order = np.lexsort((data.time_step, data.user_id))
    same = data.user_id[order][1:] == data.user_id[order][:-1]
    nxt[order[:-1][same]] = order[1:][same]
    n_s, n_a = 2, 2
    counts = np.full((n_s, n_a, n_s), 0.5)
    ok = rows & (nxt >= 0)
    np.add.at(counts, (state[ok], data.action[ok], state[nxt[ok]]), 1.0)
    mean = np.zeros((n_s, n_a))
    for i in range(n_s):
        for j in range(n_a):
            hit = (s == i) & (a == j)
            mean[i, j] = r[hit].mean() if hit.any() else 0.0
    return ToyMDP(transition=counts / counts.sum(axis=2, keepdims=True), reward=mean)


@pytest.fixture(scope="module")
def toy():
    return toy_logs()


def test_truncated_dr_spans_sim_to_sim_dr(toy) -> None:
    mdp, data, _ = toy
    values = mdp.model_values(TARGET, data, H)
    sim, _ = sim_replicates(data, values, "sim", n_boot=2)
    dr, _ = sim_replicates(data, values, "sim-dr", n_boot=2)
    assert np.isclose(sim_replicates(data, values, "sim-dr", n_boot=2, dr_steps=0)[0], sim)
    for steps in (H, H + 3):
        assert np.isclose(sim_replicates(data, values, "sim-dr", n_boot=2, dr_steps=steps)[0],
                          dr)
    mid = sim_replicates(data, values, "sim-dr", n_boot=2, dr_steps=2)[0]
    assert not np.isclose(mid, sim) and not np.isclose(mid, dr)
    for bad, est in ((-1, "sim-dr"), (2, "sim")):
        with pytest.raises(ValueError, match="dr_steps"):
            sim_replicates(data, values, est, dr_steps=bad)


def test_truncation_is_chosen_past_a_wrong_model_and_covers(toy) -> None:
    mdp, data, truth = toy
    wrong = ToyMDP(transition=np.array([[[0.2, 0.8], [0.9, 0.1]], [[0.5, 0.5], [0.6, 0.4]]]),
                   reward=mdp.reward + np.array([[1.0, -0.5], [-1.0, 0.8]]))
    values = wrong.model_values(TARGET, data, H)
    steps = truncation_steps(data, values, n_boot=200)
    assert steps > 0  # the model's own value (L = 0) is seen to disagree
    mean, boot = sim_replicates(data, values, "sim-dr", n_boot=200, dr_steps=steps)
    sim = sim_interval(data, values, "sim")
    assert abs(mean - truth) < abs(sim.mean - truth) / 4
    # the chosen interval agrees with the full correction's (the rule's condition); the
    # corrections left out keep part of the model's bias, so it need not hold the truth
    full = sim_interval(data, values, "sim-dr")
    low, high = np.quantile(boot, [0.025, 0.975])
    assert low <= full.high and high >= full.low
    exact = mdp.model_values(TARGET, data, H)
    steps = truncation_steps(data, exact, n_boot=200)
    mean, boot = sim_replicates(data, exact, "sim-dr", n_boot=200, dr_steps=steps)
    assert np.quantile(boot, 0.025) <= truth <= np.quantile(boot, 0.975)


def test_member_interval_adds_the_fitted_models_spread_and_covers() -> None:
    """Tabular models fitted on the logs: the model-fixed interval misses the fitting noise;
    halves-of-users members restore the coverage (30 toy datasets of 300 users)."""
    mdp = ToyMDP()
    truth = mdp.value(TARGET, H)
    covers = {"conditional": 0, "members": 0}
    widths = {"conditional": [], "members": []}
    n_sets = 30
    for seed in range(n_sets):
        data = mdp.log(BEHAVIOUR, 300, H, seed=100 + seed)
        ids = np.unique(data.user_id)
        main = _fitted(data, ids).model_values(TARGET, data, H)
        mean, boot = sim_replicates(data, main, "sim", n_boot=200, seed=seed)
        rng = np.random.default_rng(seed)
        halves = [rng.choice(ids, len(ids) // 2, replace=False) for _ in range(5)]
        means = [sim_replicates(data, _fitted(data, h).model_values(TARGET, data, H), "sim",
                                n_boot=2)[0] for h in halves]
        ivs = {"conditional": np.quantile(boot, [0.025, 0.975]),
               "members": (lambda iv: (iv.low, iv.high))(member_interval(mean, boot, means))}
        for k, (low, high) in ivs.items():
            covers[k] += int(low <= truth <= high)
            widths[k].append(high - low)
    assert covers["members"] >= 0.8 * n_sets
    assert covers["conditional"] < covers["members"]
    assert np.mean(widths["members"]) > np.mean(widths["conditional"])


def test_member_interval_without_spread_is_the_normal_bootstrap_interval() -> None:
    boot = np.random.default_rng(0).normal(5.0, 2.0, 4000)
    iv = member_interval(5.0, boot, np.array([5.0, 5.0, 5.0]))
    assert iv.kind == "members"
    assert iv.low == pytest.approx(5.0 - 1.96 * boot.std(ddof=1), rel=1e-3)
    wide = member_interval(5.0, boot, np.array([3.0, 5.0, 7.0]))
    v_b, v_m = boot.var(ddof=1), 4.0  # members' variance 4, halves: f / (1 - f) = 1
    df = 2 * (v_b + v_m) ** 2 / v_m**2
    from scipy.stats import t

    assert wide.high - 5.0 == pytest.approx(t.ppf(0.975, df) * np.sqrt(v_b + v_m))


@pytest.mark.parametrize(("args", "match"), [
    ({"means": [1.0]}, "member_means"),
    ({"boot": [1.0]}, "boot"),
    ({"fraction": 1.0}, "fraction"),
])
def test_member_interval_rejects_bad_input(args, match) -> None:
    means = np.asarray(args.get("means", [1.0, 2.0]))
    boot = np.asarray(args.get("boot", [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=match):
        member_interval(1.0, boot, means, fraction=args.get("fraction", 0.5))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"family": "forest"}, "`family` must be one of"),
    ({"calibration": "isotonic"}, "`calibration` must be one of"),
    ({"members": 1}, "`members` must be 0 or at least 2"),
    ({"members": -1}, "`members`"),
])
def test_sim_model_config_rejects_bad_options(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        SimModelConfig(**kwargs)


def test_accuracy_config_names_the_sim_options() -> None:
    from agents.ope.accuracy import AccuracyConfig

    with pytest.raises(ConfigError, match="`sim_calibration` must be one of"):
        AccuracyConfig(n_users=300, n_periods=6, horizon=3, sim_calibration="x")
    with pytest.raises(ConfigError, match="`sim_members` must be 0 or at least 2"):
        AccuracyConfig(n_users=300, n_periods=6, horizon=3, sim_members=1)


def test_fit_sim_models_members_learn_from_halves(tiny_synthetic_run) -> None:
    from agents.ope.sim_models import fit_sim_models
    from predictors import build_panel, load_users, open_dataset

    folder, _ = tiny_synthetic_run
    ds = open_dataset(folder)
    panel = build_panel(ds, validate=False)
    models = fit_sim_models(folder, panel, ds.spec, load_users(ds, validate=False),
                            SimModelConfig(family="markov", members=2))
    n = panel["user_id"].nunique()
    assert len(models.members) == 2
    seen = [set(m.predictor.split_["user_id"]) for m in models.members]
    assert all(len(s) == round(n / 2) for s in seen) and seen[0] != seen[1]
    assert set(models.main.predictor.split_["user_id"]) == set(panel["user_id"])
    # `sim` alone needs only V at each user's first step
    from agents.ope.accuracy import accuracy_logged_data, load_target_policy
    from agents.ope.model_based import simulator_values
    from predictors import read_start_states

    start = read_start_states(folder, "start")
    data, users = accuracy_logged_data(folder, 3, start)
    pol = {"r": load_target_policy("rule:never", ds.spec, folder)}
    both = [simulator_values(models.main, data, panel[panel["period"] < 3], pol,
                             history=start.history.subset(users), dr=dr)["r"]
            for dr in (True, False)]
    first = data.trajectories().index[:, 0]
    np.testing.assert_array_equal(both[0].v[first], both[1].v[first])
    assert not both[1].q.any() and both[1].user_steps < both[0].user_steps


def test_tree_fqe_on_the_toy_mdp_is_close_and_its_members_interval_covers() -> None:
    from agents.ope.tree_fqe import TreeFQE, TreeQConfig

    mdp = ToyMDP()
    horizon = 4
    truth = mdp.value(TARGET, horizon)
    data = mdp.log(BEHAVIOUR, 1000, horizon, seed=3)
    pi = mdp.action_dist(TARGET, data)
    small = TreeQConfig(max_iter=40, learning_rate=0.2)
    iv = TreeFQE(tree=small, members=3).interval(data, pi, n_boot=100, seed=0)
    fixed = TreeFQE(tree=small, members=0).interval(data, pi, n_boot=100, seed=0)
    assert iv.kind == "members" and fixed.kind == "conditional"
    assert abs(iv.mean - truth) / truth < 0.05 and truth in iv
    assert iv.mean == fixed.mean and iv.high - iv.low > fixed.high - fixed.low
    with pytest.raises(ConfigError, match="`members` must be 0 or at least 2"):
        TreeFQE(members=1)
    with pytest.raises(ConfigError, match="max_leaf_nodes"):
        TreeQConfig(max_leaf_nodes=1)


def test_fit_sim_models_with_the_rollout_calibration(tiny_synthetic_run) -> None:
    import warnings

    from agents.ope.sim_models import fit_sim_models
    from predictors import build_panel, load_users, open_dataset

    folder, _ = tiny_synthetic_run
    ds = open_dataset(folder)
    panel = build_panel(ds, validate=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few validation users in the tiny shop
        models = fit_sim_models(folder, panel, ds.spec, load_users(ds, validate=False),
                                SimModelConfig(family="markov", calibration="rollout"))
    cal = models.main.predictor.rollout_calibration_
    assert cal is not None and cal.coef and models.seconds["calibration"] > 0
    assert models.members == []
