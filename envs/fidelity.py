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
* visit and purchase rate per logged action;
* ``not_informed``: the behaviours the data could not inform (no visit events, no
  interventions table, actions never logged, ...), so a reader knows which simulated numbers
  rest on the data and which on the model's defaults.

A dataset without an interventions table logged no sends: its periods replay as ``none``. A
dataset without visit events (an orders log) has purchase as its observed activity: survival
counts purchases then.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from envs.rollout import rollout
from envs.shop_env import LearnedShop
from predictors import DatasetSpec


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


def not_informed(panel: pd.DataFrame, spec: DatasetSpec) -> list[str]:
    """Behaviours the panel's data cannot inform, one readable sentence each.

    Example:
        >>> from predictors import ActionSpec
        >>> spec = DatasetSpec(actions=(ActionSpec("none", 0, "none"), ActionSpec("email")))
        >>> panel = pd.DataFrame({c: [0, 0] for c in ("visits", "views", "carts", "favs",
        ...     "unsubscribes")} | {"purchases": [1, 0], "action_index": [-1, -1]})
        >>> not_informed(panel, spec)[0]
        'no visit events: visits are not modelled (purchase is the observed activity)'
    """
    out = []
    if not (panel["visits"].to_numpy() > 0).any():
        out.append("no visit events: visits are not modelled (purchase is the observed "
                   "activity)")
    empty = [c for c in ("views", "carts", "favs") if not (panel[c].to_numpy() > 0).any()]
    if empty:
        out.append(f"no {'/'.join(empty)} events: these inputs are never informed")
    action = panel["action_index"].to_numpy()
    if (action < 0).all():
        out.append("no interventions logged: every action's effect is the model's default "
                   "(identical to none); only costs differ between policies")
    else:
        never = [n for j, n in enumerate(spec.action_names) if not (action == j).any()]
        if never:
            out.append(f"actions never logged: {', '.join(never)} (their effect is not "
                       "informed by the data)")
    contacts = [j for j, a in enumerate(spec.actions) if a.kind != "none"]
    if contacts and not (panel["unsubscribes"].to_numpy() > 0).any():
        out.append("no unsubscribe events: unsubscribes are not modelled")
    if not spec.has_prices:
        out.append("no order values: revenue is not informed")
    return out


def _survival(visit: np.ndarray) -> np.ndarray:
    """Share of users with activity at or after each period of the window."""
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
    names = shop.spec.action_names
    if (log.action < 0).any():
        if "none" not in names:
            raise ValueError("the log has periods without a logged action and the catalog "
                             "has no 'none' action to replay them with")
        log = replace(log, action=np.where(log.action < 0, names.index("none"), log.action))
    sim = rollout(shop, log.action, horizon, seed=seed, replicates=replicates)
    activity = getattr(shop.simulator.predictor, "activity_", "visit")
    log_act = log.visit if activity == "visit" else log.purchase
    sim_act = sim.visit if activity == "visit" else sim.purchase
    per_period = {
        "visit_rate": {"sim": sim.visit.mean(0).tolist(), "log": log.visit.mean(0).tolist()},
        "purchase_rate": {"sim": sim.purchase.mean(0).tolist(),
                          "log": log.purchase.mean(0).tolist()},
        "revenue_per_user": {"sim": sim.revenue.mean(0).tolist(),
                             "log": log.revenue.mean(0).tolist()},
        "survival": {"sim": _survival(sim_act).tolist(), "log": _survival(log_act).tolist()},
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
        "replicates": replicates, "activity": activity,
        "not_informed": not_informed(panel, shop.spec), "summary": summary,
        "per_period": per_period, "per_action": per_action,
        "purchases_per_user": {
            "wasserstein": float(wasserstein_distance(sim_buys, log_buys)),
            "total_variation": _tv(sim_buys, log_buys),
            "mean_sim": float(sim_buys.mean()), "mean_log": float(log_buys.mean()),
        },
    }
