"""How far the learned shop is from the logs: replay the logged actions, compare behaviour.

Held-out users start where the log stood ``horizon`` periods before its end; the simulator
replays, for each of them, exactly the actions the logging policy took in those periods (so the
action distribution is the logging policy's), and the simulated behaviour is compared with what
the log recorded for the same users and periods:

* visit and purchase rate per period, revenue per user per period;
* "survival": share of users with any visit at or after period t of the window (the log cannot
  see churn directly, so both sides use this observable definition);
* purchases per user over the window: Wasserstein distance and total-variation distance
  between the simulated and logged distributions;
* visit and purchase rate per logged action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from envs.rollout import rollout
from envs.shop_env import LearnedShop


@dataclass(frozen=True)
class LoggedWindow:
    """Logged behaviour of the start users over the window, arrays ``(n, horizon)``."""

    visit: np.ndarray
    purchase: np.ndarray
    revenue: np.ndarray
    action: np.ndarray


def logged_window(panel: pd.DataFrame, user_ids: np.ndarray, start: int,
                  horizon: int) -> LoggedWindow:
    """The log's rows of ``user_ids`` for periods ``start .. start + horizon - 1``."""
    sub = panel[panel["user_id"].isin(user_ids) & (panel["period"] >= start)
                & (panel["period"] < start + horizon)]
    pos = pd.Series(np.arange(len(user_ids)), index=user_ids)
    r = pos.loc[sub["user_id"]].to_numpy()
    c = sub["period"].to_numpy() - start
    n = len(user_ids)
    visit, purchase = np.zeros((n, horizon)), np.zeros((n, horizon))
    revenue, action = np.zeros((n, horizon)), np.full((n, horizon), -1, np.int64)
    visit[r, c] = sub["visits"].to_numpy() > 0
    purchase[r, c] = sub["purchases"].to_numpy() > 0
    revenue[r, c] = sub["revenue"].to_numpy()
    action[r, c] = sub["action_index"].to_numpy()
    return LoggedWindow(visit, purchase, revenue, action)


def _survival(visit: np.ndarray) -> np.ndarray:
    """Share of users with a visit at or after each period of the window."""
    later = np.flip(np.maximum.accumulate(np.flip(visit, axis=1), axis=1), axis=1)
    return later.mean(axis=0)


def _tv(a: np.ndarray, b: np.ndarray) -> float:
    top = int(max(a.max(initial=0), b.max(initial=0))) + 1
    pa = np.bincount(a.astype(int), minlength=top) / max(len(a), 1)
    pb = np.bincount(b.astype(int), minlength=top) / max(len(b), 1)
    return float(0.5 * np.abs(pa - pb).sum())


def replay_fidelity(shop: LearnedShop, panel: pd.DataFrame, horizon: int, *,
                    replicates: int = 4, seed: int = 0) -> dict:
    """Simulate the logged actions from the shop's start users and compare with the log.

    ``shop`` must start ``horizon`` periods before the end of the log
    (``load_learned_shop(..., start_period=last + 1 - horizon)``).

    Returns:
        JSON-ready dict: per-period curves (``sim`` / ``log``), the summary table, per-action
        rates and the purchase-count distances.
    """
    starts = shop.starts
    log = logged_window(panel, starts.user_ids, starts.period, horizon)
    if (log.action < 0).all():
        raise ValueError("the log has no actions in the replay window; fidelity needs "
                         "an interventions table")
    sim = rollout(shop, log.action, horizon, seed=seed, replicates=replicates)
    names = shop.spec.action_names
    per_period = {
        "visit_rate": {"sim": sim.visit.mean(0).tolist(), "log": log.visit.mean(0).tolist()},
        "purchase_rate": {"sim": sim.purchase.mean(0).tolist(),
                          "log": log.purchase.mean(0).tolist()},
        "revenue_per_user": {"sim": sim.revenue.mean(0).tolist(),
                             "log": log.revenue.mean(0).tolist()},
        "survival": {"sim": _survival(sim.visit).tolist(), "log": _survival(log.visit).tolist()},
    }
    sim_buys, log_buys = sim.purchase.sum(1), log.purchase.sum(1)
    summary = {}
    for key, s_arr, l_arr in (("visit_rate", sim.visit, log.visit),
                              ("purchase_rate", sim.purchase, log.purchase),
                              ("revenue_per_user_period", sim.revenue, log.revenue)):
        s, lg = float(s_arr.mean()), float(l_arr.mean())
        summary[key] = {"sim": s, "log": lg, "rel_error": (s - lg) / lg if lg else None}
    s_surv, l_surv = per_period["survival"]["sim"][-1], per_period["survival"]["log"][-1]
    summary["survival_last_period"] = {"sim": s_surv, "log": l_surv,
                                       "rel_error": (s_surv - l_surv) / l_surv if l_surv else None}
    per_action = {}
    sim_action = np.tile(log.action, (replicates, 1))
    for j, name in enumerate(names):
        m_log, m_sim = log.action == j, (sim.action == j) & (sim_action == j)
        if not m_log.any():
            continue
        per_action[name] = {
            "n_log": int(m_log.sum()),
            "visit_rate": {"sim": float(sim.visit[m_sim].mean()) if m_sim.any() else None,
                           "log": float(log.visit[m_log].mean())},
            "purchase_rate": {"sim": float(sim.purchase[m_sim].mean()) if m_sim.any() else None,
                              "log": float(log.purchase[m_log].mean())},
        }
    return {
        "start_period": int(starts.period), "horizon": horizon, "users": len(starts),
        "replicates": replicates, "summary": summary, "per_period": per_period,
        "per_action": per_action,
        "purchases_per_user": {
            "wasserstein": float(wasserstein_distance(sim_buys, log_buys)),
            "total_variation": _tv(sim_buys, log_buys),
            "mean_sim": float(sim_buys.mean()), "mean_log": float(log_buys.mean()),
        },
    }
