"""OPE on a dataset: LoggedData from the panel and the ``nudgegym ope`` command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from agents.cli import run_main
from agents.ope import SNIPS
from agents.ope.panel import logged_data_from_panel
from agents.policy import FixedActionPolicy
from predictors import DataValidationError, build_panel, observation_names, open_dataset


@pytest.fixture(scope="module")
def tiny_logged(tiny_run):
    data, _ = tiny_run
    ds = open_dataset(data)
    panel = build_panel(ds)
    return ds, panel, logged_data_from_panel(panel, ds.spec, reward="net")


def test_panel_rows_become_trajectories(tiny_logged) -> None:
    ds, panel, logged = tiny_logged
    assert logged.n_actions == ds.spec.n_actions
    assert logged.action_names == tuple(ds.spec.action_names)
    assert logged.n_rounds == int((panel["action_index"] >= 0).sum())
    assert logged.obs.shape[1] == len(observation_names())
    traj = logged.trajectories()
    assert traj.n_trajectories == panel["user_id"].nunique()


def test_net_reward_subtracts_costs(tiny_logged) -> None:
    ds, panel, logged = tiny_logged
    revenue = logged_data_from_panel(panel, ds.spec, reward="revenue").reward
    cost = np.array([a.cost for a in ds.spec.actions])[logged.action]
    assert (logged.reward <= revenue - cost + 1e-9).all()
    none = ds.spec.action_index("none")
    np.testing.assert_allclose(logged.reward[logged.action == none],
                               revenue[logged.action == none])


def test_snips_of_a_fixed_action_is_its_logged_mean(tiny_logged) -> None:
    ds, _, logged = tiny_logged
    email = ds.spec.action_index("email")
    value = SNIPS().estimate(logged, FixedActionPolicy(email, ds.spec.n_actions))
    assert value == pytest.approx(logged.reward[logged.action == email].mean())


def test_missing_propensities_are_reported(tiny_logged) -> None:
    ds, panel, _ = tiny_logged
    no_p = panel.assign(propensity=np.nan)
    with pytest.raises(DataValidationError, match="propensity"):
        logged_data_from_panel(no_p, ds.spec)
    bad = panel.copy()
    bad.loc[bad.index[bad["action_index"] >= 0][0], "propensity"] = 0.0
    with pytest.raises(DataValidationError, match=r"\(0, 1\]"):
        logged_data_from_panel(bad, ds.spec)
    with pytest.raises(ValueError, match="reward"):
        logged_data_from_panel(pd.DataFrame(), ds.spec, reward="profit")


def test_ope_command(tiny_run, tmp_path, capsys) -> None:
    data, _ = tiny_run
    out = tmp_path / "ope"
    rc = run_main(["ope", str(data), "--policy", "rule:always:email", "--policy", "rule:never",
                   "--no-sequential", "--boot", "50", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    result = json.loads((out / "ope.json").read_text())
    assert [r["policy"] for r in result["results"]] == ["rule:always:email", "rule:never"]
    names = [e["estimator"] for e in result["results"][0]["estimates"]]
    assert names == ["dm", "ips", "snips", "dr", "sndr", "switch-dr", "dm-refit", "dr-refit"]
    kinds = {e["estimator"]: e["kind"] for e in result["results"][0]["estimates"]}
    assert kinds["dm"] == "conditional" and kinds["dm-refit"] == "refit"
    assert kinds["ips"] == "bootstrap"
    assert json.loads((out / "config.json").read_text())["command"] == "ope"
    assert run_main(["ope", str(data), "--policy", "nonsense", "--out", str(out)]) == 1
    assert "expected rule:NAME" in capsys.readouterr().err


def test_ope_command_with_target_probability_file(tiny_run, tmp_path, capsys) -> None:
    from predictors import build_panel, open_dataset

    data, _ = tiny_run
    ds = open_dataset(data)
    logged = logged_data_from_panel(build_panel(ds), ds.spec)
    names = ds.spec.action_names
    target = pd.DataFrame({"user_id": logged.user_id, "period": logged.time_step})
    for j, a in enumerate(names):
        target[f"prob__{a}"] = float(j == 1)  # always the second action
    target.sample(frac=1.0, random_state=0).to_csv(tmp_path / "always_second.csv", index=False)
    out = tmp_path / "ope"
    rc = run_main(["ope", str(data), "--target-probs", str(tmp_path / "always_second.csv"),
                   "--no-sequential", "--boot", "20", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "ope.json").read_text())["results"][0]
    ips = next(e for e in res["estimates"] if e["estimator"] == "ips")
    w = (logged.action == 1) / logged.pscore
    assert ips["mean"] == pytest.approx(float(np.mean(w * logged.reward)), rel=1e-9)
    target.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    assert run_main(["ope", str(data), "--target-probs", str(tmp_path / "short.csv"),
                     "--no-sequential", "--out", str(out)]) == 1
    assert "no row for logged" in capsys.readouterr().err
