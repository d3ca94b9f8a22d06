"""The learned simulator's OPE estimates (``sim``, ``sim-dr``) and the choice among estimators."""

from __future__ import annotations

import json

import numpy as np
import pytest
from toy_logs import TARGET, H, toy_logs

from agents.cli import run_main
from agents.ope.base import Interval
from agents.ope.choice import choose_estimator
from agents.ope.model_based import (
    SimulatorConfig,
    SimulatorValues,
    fit_simulator,
    sim_interval,
    simulator_values,
)
from agents.ope.toy_mdp import ToyMDP


@pytest.fixture(scope="module")
def toy():
    return toy_logs()


def test_sim_dr_with_the_exact_model_is_the_truth_up_to_noise(toy) -> None:
    mdp, data, truth = toy
    values = mdp.model_values(TARGET, data, H)
    sim = sim_interval(data, values, "sim", n_boot=200)
    dr = sim_interval(data, values, "sim-dr", n_boot=200)
    assert dr.kind == "conditional" and sim.kind == "conditional"
    assert abs(sim.mean - truth) / truth < 0.03 and truth in sim
    assert truth in dr and abs(dr.mean - truth) / truth < 0.06  # DR adds the rewards' noise
    plain = sim_interval(data, values, "sim-dr", SimulatorConfig(self_normalize=False))
    assert truth in plain


def test_sim_dr_corrects_a_wrong_model_toward_the_truth(toy) -> None:
    mdp, data, truth = toy
    wrong = ToyMDP(transition=np.array([[[0.2, 0.8], [0.9, 0.1]], [[0.5, 0.5], [0.6, 0.4]]]),
                   reward=mdp.reward + np.array([[1.0, -0.5], [-1.0, 0.8]]))
    values = wrong.model_values(TARGET, data, H)
    sim = sim_interval(data, values, "sim", n_boot=200)
    dr = sim_interval(data, values, "sim-dr", n_boot=200)
    assert abs(sim.mean - truth) / truth > 0.2 and truth not in sim  # the model is off
    assert abs(dr.mean - truth) < abs(sim.mean - truth) / 4
    assert truth in dr


def test_sim_interval_rejects_mismatched_values(toy) -> None:
    mdp, data, _ = toy
    values = mdp.model_values(TARGET, data, H)
    short = SimulatorValues(values.q[:10], values.v[:10], values.dist[:10], 0)
    with pytest.raises(ValueError, match="rows"):
        sim_interval(data, short)
    with pytest.raises(ValueError, match="estimator"):
        sim_interval(data, values, "dm")
    with pytest.raises(ValueError, match="replicates"):
        SimulatorConfig(replicates=0)


@pytest.fixture(scope="module")
def shop(tiny_synthetic_run):
    from agents.ope.accuracy import accuracy_logged_data, load_target_policy
    from predictors import build_panel, load_users, open_dataset, read_start_states

    folder, _ = tiny_synthetic_run
    ds = open_dataset(folder)
    panel = build_panel(ds, validate=False)
    sim = fit_simulator(panel, ds.spec, load_users(ds, validate=False), family="markov")
    start = read_start_states(folder, "start")
    data, users = accuracy_logged_data(folder, 4, start)
    return folder, ds, panel[panel["period"] < 4], sim, start, data, users, load_target_policy


def test_replay_reaches_the_logged_observations(shop) -> None:
    from envs.simulator import StartStates

    _, _, panel, sim, start, data, users, _ = shop
    traj = data.trajectories()
    n = len(users)
    base = StartStates(users, 0, start.history.subset(users), sim.predictor.initial_state(n),
                       np.zeros((n, 0), np.float32), np.zeros((n, 2), bool),
                       np.full(n, 10_000), np.zeros((n, 8), bool))
    replay = sim.clone()
    replay.load(base, np.arange(n))
    keyed = panel.set_index(["user_id", "period"])
    for t in range(traj.horizon):
        rows = traj.index[:, t]
        np.testing.assert_allclose(replay.observation(), data.obs[rows], atol=1e-5)
        logged = keyed.loc[list(zip(users, np.full(n, t), strict=True))]
        from envs.simulator import RAW_COLUMNS
        replay.observe(data.action[rows], logged[list(RAW_COLUMNS)].to_numpy(np.float32))


def test_simulator_values_of_rules(shop) -> None:
    folder, ds, panel, sim, start, data, users, load = shop
    policies = {t: load(t, ds.spec, folder) for t in ("rule:never", "rule:random")}
    vals = simulator_values(sim, data, panel, policies, SimulatorConfig(seed=0),
                            history=start.history.subset(users))
    traj = data.trajectories()
    first = traj.index[:, 0]
    never = vals["rule:never"]
    assert (never.v[first] != 0).all()  # every user's start is valued
    w = never.dist[np.arange(data.n_rounds), data.action] / data.pscore
    rho = np.cumprod(w[traj.index], axis=1)
    # a deterministic rule: Q of the logged action is V where the rule took it, else unused
    later = traj.index[:, 1:][rho[:, :-1] == 0]
    assert (never.v[later] == 0).all() and (never.q[later] == 0).all()
    took = traj.index[rho > 0]
    np.testing.assert_array_equal(never.q[took], never.v[took])
    # the uniform policy needs a Q rollout of its own at every logged state
    assert vals["rule:random"].user_steps > never.user_steps
    sim_iv = sim_interval(data, never, "sim")
    assert np.isclose(sim_iv.mean, never.v[first].mean())
    with pytest.raises(ValueError, match="history"):
        simulator_values(sim, data, panel, policies, history=start.history.subset(users[:5]))


def test_choice_slope_stops_at_the_first_tight_interval_that_disagrees() -> None:
    ivs = {"ips": Interval(10.0, 0.0, 20.0), "dr": Interval(11.0, 7.0, 15.0),
           "model": Interval(16.5, 16.0, 17.0), "tiny": Interval(11.0, 10.9, 11.1)}
    pick = choose_estimator(ivs)
    assert pick.estimator == "dr"
    assert "misses dr" in pick.rejected["model"] and "stopped" in pick.rejected["tiny"]
    agree = choose_estimator({"ips": Interval(10.0, 0.0, 20.0), "dr": Interval(11.0, 7.0, 15.0),
                              "model": Interval(12.0, 11.0, 13.0)})
    assert agree.estimator == "model" and "2 wider" in agree.reason


def test_choice_mse_weighs_bias_against_variance() -> None:
    ivs = {"ips": Interval(10.0, 0.0, 20.0), "biased": Interval(18.0, 17.5, 18.5),
           "ok": Interval(11.0, 9.0, 13.0), "flat": Interval(0.0, 0.0, 0.0)}
    pick = choose_estimator(ivs, "mse")
    assert pick.estimator == "ok"
    assert "degenerate" in pick.rejected["flat"]
    # a difference of 4 is within the reference's noise (sd 5.1): the tight estimate wins
    assert choose_estimator({"ips": Interval(10.0, 0.0, 20.0),
                             "close": Interval(14.0, 13.5, 14.5)}, "mse").estimator == "close"
    assert "biased" in pick.rejected and pick.method == "mse"
    with pytest.raises(ValueError, match="method"):
        choose_estimator(ivs, "best")
    with pytest.raises(ValueError, match="finite"):
        choose_estimator({"a": Interval(float("nan"), 0.0, 1.0)})


def test_ope_command_with_predictor(tiny_synthetic_run, tmp_path, capsys) -> None:
    data, pred = tiny_synthetic_run
    out = tmp_path / "ope"
    rc = run_main(["ope", str(data), "--policy", "rule:never", "--policy", "rule:always:email",
                   "--predictor", str(pred), "--boot", "30", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "chosen per user:" in text and "chosen per decision:" in text
    res = json.loads((out / "ope.json").read_text())["results"][0]
    rows = {e["estimator"]: e for e in res["estimates"]}
    assert rows["sim"]["kind"] == "conditional" and rows["sim-dr"]["unit"] == "user"
    assert res["choice"]["user"]["estimator"] in rows
    assert run_main(["ope", str(data), "--policy", "rule:never", "--predictor", str(pred),
                     "--reward", "revenue", "--out", str(tmp_path / "x")]) == 1
    assert "net reward" in capsys.readouterr().err
