"""LoggedData validation, target probabilities and trajectories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.ope import LoggedData, Trajectories, target_action_dist
from agents.policy import FixedActionPolicy, UniformRandomPolicy


def _args(**over):
    n = 20
    args = dict(action=np.arange(n) % 3, reward=np.ones(n), pscore=np.full(n, 1 / 3), n_actions=3)
    args.update(over)
    return args


def _with(name, row, value, **over):
    args = _args(**over)
    arr = np.array(args[name], copy=True)
    arr[row] = value
    args[name] = arr
    return args


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (_with("pscore", 17, 0.0), ValueError, r"`pscore` must be in \(0, 1\]; got 0.0 at row 17"),
        (_with("pscore", 3, 1.5), ValueError, r"`pscore` must be in \(0, 1\]; got 1.5 at row 3"),
        (_with("pscore", 4, np.nan), ValueError, r"`pscore` .* got nan at row 4"),
        (_with("action", 5, 3), ValueError, r"`action` must be in \[0, 3\); got 3 at row 5"),
        (_with("action", 6, -1), ValueError, r"`action` .* got -1 at row 6"),
        (_with("reward", 7, np.nan), ValueError, r"`reward` must be finite; got nan at row 7"),
        (_args(reward=np.ones(19)), ValueError, r"`reward` must have 20 rows"),
        (_args(pscore=np.ones(21)), ValueError, r"`pscore` must have 20 rows"),
        (_args(action=np.zeros(20)), TypeError, r"`action` must hold integers"),
        (_args(action=np.zeros((20, 1), int)), ValueError, r"`action` must be 1-D"),
        (_args(action=np.zeros(0, int), reward=np.zeros(0), pscore=np.zeros(0)), ValueError,
         "empty"),
        (_args(n_actions=0), ValueError, "n_actions"),
        (_args(obs=np.ones((19, 2))), ValueError, r"`obs` must have 20 rows"),
        (_args(user_id=np.arange(20)), ValueError, "together"),
        (_args(action_mask=np.zeros((20, 3), bool)), ValueError, "masked by `action_mask`"),
        (_args(action_names=("a", "b")), ValueError, "name 3 actions"),
    ],
)
def test_logged_data_rejects_bad_input(args, error, match) -> None:
    with pytest.raises(error, match=match):
        LoggedData(**args)


def _dist(row=None, value=None):
    d = np.full((20, 3), 1 / 3)
    if row is not None:
        d[row] = value
    return d


@pytest.mark.parametrize(
    ("dist", "match"),
    [
        (_dist(9, [0.5, 0.5, 0.5]), r"`action_dist` rows must sum to 1; got 1.5 at row 9"),
        (_dist(2, [1.5, -0.5, 0.0]), r"`action_dist` must be finite and >= 0; .* at row 2"),
        (_dist(4, [np.nan, 0.5, 0.5]), r"at row 4"),
        (np.full((19, 3), 1 / 3), r"`action_dist` must have shape \(20, 3\)"),
    ],
)
def test_target_probabilities_are_checked(dist, match) -> None:
    with pytest.raises(ValueError, match=match):
        target_action_dist(dist, LoggedData(**_args()))


def test_target_probabilities_may_not_use_masked_actions() -> None:
    mask = np.ones((20, 3), bool)
    mask[np.arange(20), (np.arange(20) + 1) % 3] = False
    data = LoggedData(**_args(action_mask=mask))
    with pytest.raises(ValueError, match="masked action at row 0"):
        target_action_dist(_dist(), data)
    # a policy asked through the interface gets the mask and complies
    dist = target_action_dist(UniformRandomPolicy(3), data)
    assert (dist[~mask] == 0).all()


def test_policy_with_wrong_catalog_is_rejected() -> None:
    with pytest.raises(ValueError, match="2 actions; the data has 3"):
        target_action_dist(FixedActionPolicy(0, 2), LoggedData(**_args()))


def test_trajectories_group_and_order_rows() -> None:
    user = np.array(["b", "a", "b", "a", "a"])
    step = np.array([1, 2, 0, 0, 1])
    traj = Trajectories.from_rows(user, step)
    np.testing.assert_array_equal(traj.users, ["a", "b"])
    np.testing.assert_array_equal(traj.index, [[3, 4, 1], [2, 0, -1]])
    np.testing.assert_array_equal(traj.next_row(), [-1, -1, 0, 4, 1])
    np.testing.assert_array_equal(traj.gather(np.arange(5.0), fill=-1), [[3, 4, 1], [2, 0, -1]])


def test_from_frame_maps_names_and_reports_unknown_actions() -> None:
    df = pd.DataFrame({"user_id": [1, 1, 2], "period": [0, 1, 0],
                       "action": ["none", "email", "none"], "reward": [0.0, 1.0, 0.0],
                       "pscore": [0.5, 0.5, 0.5], "x": [1.0, 2.0, 3.0]})
    data = LoggedData.from_frame(df, action_names=["none", "email"], obs_columns=["x"],
                                 user_id="user_id", time_step="period")
    np.testing.assert_array_equal(data.action, [0, 1, 0])
    assert data.obs.shape == (3, 1) and data.trajectories().horizon == 2
    df.loc[2, "action"] = "sms"
    with pytest.raises(ValueError, match=r"row 2: action 'sms' is not in the catalog"):
        LoggedData.from_frame(df, action_names=["none", "email"])
    with pytest.raises(ValueError, match="lacks column"):
        LoggedData.from_frame(df.drop(columns="pscore"), action_names=["none", "email", "sms"])
