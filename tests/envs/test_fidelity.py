"""Replay fidelity: the simulator replays logged actions and is compared with the log."""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.fidelity import logged_window, replay_fidelity
from envs.shop_env import load_learned_shop
from predictors import build_panel, open_dataset


def test_logged_window_reads_the_right_cells() -> None:
    panel = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2], "period": [0, 1, 2, 1, 2], "visits": [1, 0, 2, 1, 0],
        "purchases": [0, 0, 1, 1, 0], "revenue": [0, 0, 5.0, 7.0, 0],
        "action_index": [0, 1, 2, 3, -1]})
    w = logged_window(panel, np.array([2, 1]), start=1, horizon=2)
    assert w.visit.tolist() == [[1, 0], [0, 1]]
    assert w.purchase.tolist() == [[1, 0], [0, 1]]
    assert w.revenue.tolist() == [[7.0, 0.0], [0.0, 5.0]]
    assert w.action.tolist() == [[3, -1], [1, 2]]


def test_replay_fidelity_report(tiny_run) -> None:
    data, pred = tiny_run
    panel = build_panel(open_dataset(data))
    last = int(panel["period"].max())
    shop = load_learned_shop(pred, data, start_period=last + 1 - 4, start_users="all")
    rep = replay_fidelity(shop, panel, horizon=4, replicates=2, seed=0)
    assert rep["users"] == len(shop.starts)
    for key in ("visit_rate", "purchase_rate", "revenue_per_user", "survival"):
        assert len(rep["per_period"][key]["sim"]) == len(rep["per_period"][key]["log"]) == 4
    log_visit = rep["summary"]["visit_rate"]["log"]
    # the tiny world's users visit 30-50% of periods; the log says so
    assert 0.2 < log_visit < 0.6
    # even a 1-epoch predictor lands in the right range of visit rates
    assert abs(rep["summary"]["visit_rate"]["rel_error"]) < 1.0
    assert set(rep["per_action"]) <= set(shop.spec.action_names)
    assert rep["purchases_per_user"]["total_variation"] >= 0


def test_replay_fidelity_curves_split_by_logged_action(tiny_run) -> None:
    data, pred = tiny_run
    panel = build_panel(open_dataset(data))
    last = int(panel["period"].max())
    shop = load_learned_shop(pred, data, start_period=last + 1 - 4, start_users="all")
    rep = replay_fidelity(shop, panel, horizon=4, replicates=2, seed=0)
    assert len(rep["per_period"]["unsubscribe_rate"]["sim"]) == 4
    groups = rep["by_action"]
    assert {"contacted", "not_contacted"} <= set(groups)
    # the groups partition the logged user-periods that have an action
    n_actions = sum(v["n_log"] for k, v in groups.items() if k in shop.spec.action_names)
    assert groups["contacted"]["n_log"] + groups["not_contacted"]["n_log"] == n_actions
    for key in ("visits", "purchases", "revenue"):
        t = rep["per_user_totals"][key]
        assert 0 <= t["ks"] <= 1 and t["wasserstein"] >= 0
    for v in rep["max_period_rel_error"].values():
        assert v is None or v >= 0
