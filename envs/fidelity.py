"""How far the learned shop is from the logs: replay the logged actions, compare behaviour.

Held-out users start where the log stood ``horizon`` periods before its end; the simulator
replays, for each of them, exactly the actions the logging policy took in those periods (so the
action distribution is the logging policy's), and the simulated behaviour is compared with what
the log recorded for the same users and periods:

* visit and purchase rate per period, revenue per user per period;
* "survival": share of users with any visit at or after period t of the window (the log cannot
  see churn directly, so both sides use this observable definition);
* unsubscribe rate per period;
* per-user totals over the window (visits, purchases, revenue): Kolmogorov-Smirnov statistic
  and Wasserstein distance between the simulated and logged distributions (and the
  total-variation distance of purchase counts);
* the same curves split by the logged action of the period: not contacted (``none``),
  contacted (any other action), and each action; the simulated users are the replayed copies
  of the logged users, so each group compares the same user-periods;
* the largest relative error of any single period of the visit, purchase and revenue curves;
* the log's own sampling noise: per rate, the relative standard error of the window's mean
  over the start users (``log_rel_se``), and per period (``period_rel_se_log``). A replay
  error of one or two of these is what a perfect simulator shows on these users.
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
from scipy.stats import ks_2samp, wasserstein_distance

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
    unsubscribe: np.ndarray | None = None


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
    unsub = np.zeros((n, horizon))
    visit[r, c] = sub["visits"].to_numpy() > 0
    purchase[r, c] = sub["purchases"].to_numpy() > 0
    revenue[r, c] = sub["revenue"].to_numpy()
    action[r, c] = sub["action_index"].to_numpy()
    if "unsubscribes" in sub:
        unsub[r, c] = sub["unsubscribes"].to_numpy() > 0
    return LoggedWindow(visit, purchase, revenue, action, unsub)


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
    log_unsub = log.unsubscribe if log.unsubscribe is not None else np.zeros_like(log.visit)
    sim_vals = {"visit_rate": sim.visit, "purchase_rate": sim.purchase,
                "revenue_per_user": sim.revenue, "unsubscribe_rate": sim.unsubscribe}
    log_vals = {"visit_rate": log.visit, "purchase_rate": log.purchase,
                "revenue_per_user": log.revenue, "unsubscribe_rate": log_unsub}
    per_period = {k: {"sim": sim_vals[k].mean(0).tolist(), "log": log_vals[k].mean(0).tolist()}
                  for k in sim_vals}
    per_period["survival"] = {"sim": _survival(sim_act).tolist(),
                              "log": _survival(log_act).tolist()}
    summary = {}
    for key, s_arr, l_arr in (("visit_rate", sim.visit, log.visit),
                              ("purchase_rate", sim.purchase, log.purchase),
                              ("revenue_per_user_period", sim.revenue, log.revenue),
                              ("unsubscribe_rate", sim.unsubscribe, log_unsub)):
        s, lg = float(s_arr.mean()), float(l_arr.mean())
        # sampling noise of the log's own rate over the window: users differ, so it is the
        # spread of per-user means (not of user-periods) that sets it
        se = float(l_arr.mean(1).std(ddof=1) / np.sqrt(len(l_arr))) if len(l_arr) > 1 else 0.0
        summary[key] = {"sim": s, "log": lg, "rel_error": _rel(s, lg),
                        "log_rel_se": se / lg if lg else None}
    s_surv, l_surv = per_period["survival"]["sim"][-1], per_period["survival"]["log"][-1]
    summary["survival_last_period"] = {"sim": s_surv, "log": l_surv,
                                       "rel_error": _rel(s_surv, l_surv)}
    sim_action = np.tile(log.action, (replicates, 1))
    groups = {"not_contacted": lambda a: a == shop.simulator.none_index,
              "contacted": lambda a: (a >= 0) & (a != shop.simulator.none_index)}
    groups.update({name: (lambda a, j=j: a == j) for j, name in enumerate(names)})
    by_action = {}
    for g, sel in groups.items():
        m_log, m_sim = sel(log.action), sel(sim_action) & sim.alive
        if m_log.any():
            by_action[g] = _group_curves(sim_vals, log_vals, m_sim, m_log)
    totals = {}
    for key, s_arr, l_arr in (("visits", sim.visit, log.visit),
                              ("purchases", sim.purchase, log.purchase),
                              ("revenue", sim.revenue, log.revenue)):
        a, b = s_arr.sum(1), l_arr.sum(1)
        totals[key] = {"ks": float(ks_2samp(a, b).statistic),
                       "wasserstein": float(wasserstein_distance(a, b)),
                       "mean_sim": float(a.mean()), "mean_log": float(b.mean())}
    sim_buys, log_buys = sim.purchase.sum(1), log.purchase.sum(1)
    worst = {k: _max_period_error(per_period[k]) for k in ("visit_rate", "purchase_rate",
                                                           "revenue_per_user")}
    # sampling noise of the log's own per-period means (relative standard error, median over
    # periods): a worst-period error near 2-3x this is what a perfect simulator would show
    noise = {k: float(np.median(log_vals[k].std(0, ddof=1) / np.sqrt(len(starts))
                                / np.maximum(log_vals[k].mean(0), 1e-12)))
             for k in worst}
    return {
        "start_period": int(starts.period), "horizon": horizon, "users": len(starts),
        "replicates": replicates, "activity": activity,
        "not_informed": not_informed(panel, shop.spec), "summary": summary,
        "per_period": per_period, "max_period_rel_error": worst, "period_rel_se_log": noise,
        "per_action": {k: v["summary"] | {"n_log": v["n_log"]} for k, v in by_action.items()
                       if k in names},
        "by_action": by_action, "per_user_totals": totals,
        "purchases_per_user": {
            "wasserstein": float(wasserstein_distance(sim_buys, log_buys)),
            "total_variation": _tv(sim_buys, log_buys),
            "mean_sim": float(sim_buys.mean()), "mean_log": float(log_buys.mean()),
        },
    }


def _rel(s: float, lg: float) -> float | None:
    return (s - lg) / lg if lg else None


def _max_period_error(curve: dict) -> float | None:
    s, lg = np.asarray(curve["sim"]), np.asarray(curve["log"])
    ok = lg > 0
    return float(np.max(np.abs(s[ok] / lg[ok] - 1))) if ok.any() else None


def _group_curves(sim_vals: dict, log_vals: dict, m_sim: np.ndarray, m_log: np.ndarray) -> dict:
    """Per-period and overall means of each outcome over the user-periods of a group."""
    def period_mean(x: np.ndarray, m: np.ndarray) -> list[float | None]:
        n = m.sum(0)
        tot = np.where(m, x, 0).sum(0)
        return [float(t / k) if k else None for t, k in zip(tot, n, strict=True)]

    out: dict = {"n_log": int(m_log.sum()), "per_period": {}, "summary": {}}
    for k in sim_vals:
        out["per_period"][k] = {"sim": period_mean(sim_vals[k], m_sim),
                                "log": period_mean(log_vals[k], m_log)}
        s = float(sim_vals[k][m_sim].mean()) if m_sim.any() else None
        lg = float(log_vals[k][m_log].mean())
        out["summary"][k] = {"sim": s, "log": lg,
                             "rel_error": _rel(s, lg) if s is not None else None}
    return out
