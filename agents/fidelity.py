"""Fidelity of the learned shop against the TRUE synthetic world: do rule policies keep their
value and their ranking?

The same held-out users start, in both, where the log leaves them (the end of the logged
periods): in the learned shop from their replayed history, in the world from their true latent
state (``truth/states.parquet``). Each rule policy runs ``horizon`` periods in both; the report
gives each policy's value per user, the relative error of the simulated value, and whether the
ranking of the policies is preserved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from envs import load_learned_shop, rollout
from predictors import observation_names

#: Rule policies compared by default (``rule:`` names of :func:`agents.baselines.make_rule`).
FIDELITY_RULES = ("never", "always:email", "email_capped", "always:coupon_10", "winback",
                  "rfm", "random", "greedy", "campaign")


def _policy_fn(rule, rng: np.random.Generator):
    def fn(obs: np.ndarray, mask: np.ndarray | None = None, _rng=None) -> np.ndarray:
        return np.asarray(rule.act(obs, _rng if _rng is not None else rng, action_mask=mask),
                          np.int64)

    return fn


def policy_fidelity(predictor: str | Path, data: str | Path, *, horizon: int = 26,
                    start_users: str = "test", rules: tuple[str, ...] = FIDELITY_RULES,
                    replicates: int = 2, seed: int = 0,
                    panel: pd.DataFrame | None = None, extra: tuple[str, ...] = ()) -> dict:
    """Simulated vs true value of rule policies from the same start users.

    ``panel``: the dataset's panel when the caller already built it (else it is built here).
    ``extra``: more policies ranked with the rules, as :func:`agents.loading.load_policy`
    takes them (e.g. the ``tune-rule`` run of the tuned rule, or ``rule:tuned:...``); a run
    folder is labelled ``tuned:FOLDER``.

    Returns:
        JSON-ready dict with ``rows`` (policy, sim, true, rel_error, ranks, standard errors),
        ``max_abs_rel_error``, ``ranking_identical`` and ``spearman``.
    """
    from agents.loading import load_policy
    from envs.world_vec_env import world_start_states
    from predictors.synthetic import read_world, true_policy_value

    shop = load_learned_shop(predictor, data, horizon=horizon, start_users=start_users,
                             panel=panel)
    world = read_world(data)
    world_start = world_start_states(data, np.tile(shop.starts.user_ids, replicates))
    world_names = observation_names(world_start.history.config)
    rows = []
    specs = [f"rule:{name}" for name in rules] + list(extra)
    for k, spec in enumerate(specs):
        sim_rule = load_policy(spec, shop.spec, shop.observation_names, data)
        true_rule = load_policy(spec, shop.spec, world_names, data)
        sim = rollout(shop, _policy_fn(sim_rule, np.random.default_rng(seed)), horizon,
                      seed=seed + 1000 * k, replicates=replicates).returns
        true = true_policy_value(world, _policy_fn(true_rule, np.random.default_rng(seed + 1)),
                                 world_start, horizon, seed + 1000 * k)
        label = spec if spec.startswith("rule:") else f"tuned:{Path(spec).name}"
        rows.append({"policy": label, "sim": float(sim.mean()),
                     "sim_se": float(sim.std(ddof=1) / np.sqrt(len(sim))),
                     "true": float(true.mean()),
                     "true_se": float(true.std(ddof=1) / np.sqrt(len(true)))})
    return {"users": len(shop.starts), "replicates": replicates, "horizon": horizon,
            **rank_fidelity(rows)}


def rank_fidelity(rows: list[dict], z: float = 1.96) -> dict:
    """Value errors and ranking agreement of rules with ``sim``/``true`` means and their SEs.

    Adds to each row ``rel_error``, ``ratio`` (sim / true) with its normal-approximation
    interval ``ratio_low`` .. ``ratio_high`` (delta method; the two values come from
    independent simulations), ``rank_sim`` and ``rank_true``.

    Returns:
        ``rows``, ``max_abs_rel_error``, ``ranking_identical``, ``spearman``, ``n_rules``,
        ``best_sim`` (the rule the simulator would pick), ``best_true`` and ``regret_at_1``:
        the TRUE value lost by picking the simulator's best rule, as a fraction of the best
        rule's TRUE value.
    """
    sims = np.array([r["sim"] for r in rows])
    trues = np.array([r["true"] for r in rows])
    rank_sim = (-sims).argsort().argsort() + 1
    rank_true = (-trues).argsort().argsort() + 1
    for r, rs, rt in zip(rows, rank_sim, rank_true, strict=True):
        t, sv = r["true"], r["sim"]
        r["rel_error"] = (sv - t) / abs(t) if t else float("nan")
        ratio = sv / t if t else float("nan")
        rse = abs(ratio) * np.sqrt((r["sim_se"] / sv) ** 2 + (r["true_se"] / t) ** 2) \
            if t and sv else float("nan")
        r["ratio"], r["ratio_low"], r["ratio_high"] = ratio, ratio - z * rse, ratio + z * rse
        r["rank_sim"], r["rank_true"] = int(rs), int(rt)
    rho = float(spearmanr(sims, trues).statistic) if len(rows) > 1 else float("nan")
    i_sim, i_true = int(sims.argmax()), int(trues.argmax())
    best = trues[i_true]
    regret = float((best - trues[i_sim]) / abs(best)) if best else float("nan")
    return {"rows": rows, "n_rules": len(rows),
            "max_abs_rel_error": float(np.nanmax(np.abs([r["rel_error"] for r in rows]))),
            "ranking_identical": bool((rank_sim == rank_true).all()), "spearman": rho,
            "best_sim": rows[i_sim]["policy"], "best_true": rows[i_true]["policy"],
            "regret_at_1": regret}


def plot_replay(report: dict, path: str | Path) -> Path:
    """Per-period curves, simulated vs logged: visit, purchase, revenue, unsubscribe, activity
    (survival), and the visit rate of contacted vs not-contacted user-periods."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from predictors.io import atomic_path

    keys = ("visit_rate", "purchase_rate", "revenue_per_user", "unsubscribe_rate", "survival")
    fig, axes = plt.subplots(2, 3, figsize=(15, 7))
    axes = axes.ravel()
    start = report["start_period"]
    t = np.arange(start, start + report["horizon"])

    def curve(ax, c, label, color):
        lg = np.array([np.nan if v is None else v for v in c["log"]], float)
        sm = np.array([np.nan if v is None else v for v in c["sim"]], float)
        ax.plot(t, lg, label=f"logged {label}".strip(), color=color)
        ax.plot(t, sm, label=f"simulated {label}".strip(), color=color, linestyle="--")

    for ax, k in zip(axes, keys, strict=False):
        if k in report["per_period"]:
            curve(ax, report["per_period"][k], "", "black")
        ax.set_title("activity (visit at or after t)" if k == "survival" else k.replace("_", " "))
        ax.set_xlabel("period")
    ax = axes[5]
    for g, color in (("contacted", "tab:red"), ("not_contacted", "tab:blue")):
        if g in report.get("by_action", {}):
            curve(ax, report["by_action"][g]["per_period"]["visit_rate"], g.replace("_", " "),
                  color)
    ax.set_title("visit rate by logged action")
    ax.set_xlabel("period")
    ax.legend(fontsize=7)
    axes[0].legend()
    fig.suptitle("Learned shop replaying the logged actions vs the log (held-out users)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
