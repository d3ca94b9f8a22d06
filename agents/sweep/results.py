"""Sweep results: per config, value over seeds and users with a CI, the paired difference to the
best rule, the config chosen by its lower bound, ``sweep.json``, ``sweep.md`` and plots.

Every job evaluates from the same start users with the same common random numbers, so a
config's per-user returns form a seeds x users table ``M`` (replicates averaged). Its CI is
``mean +- sqrt(t^2 var(seed means) / S + z^2 var(user means) / U)`` (``t`` of ``S - 1``
degrees of freedom): the seed term carries training noise, the user term the choice of users
(crossed random effects, interaction left in the residual). The paired difference to the best
rule uses the same formula on ``M - rule`` per user. The chosen config is the one with the
highest lower bound of its value (TRUE value when the shop has truth), not the best single seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from agents.sweep.jobs import Job
from predictors.io import atomic_path, write_json, write_text

__all__ = ["crossed_ci", "summarise", "write_results"]


def crossed_ci(m: np.ndarray, z: float = 1.96) -> dict[str, Any]:
    """Mean of a seeds x users table with a CI over both (see the module docstring)."""
    m = np.asarray(m, dtype=float)
    s, u = m.shape
    seed_means, user_means = m.mean(1), m.mean(0)
    t = float(stats.t.ppf(0.975, s - 1)) if s > 1 else 0.0
    var_s = seed_means.var(ddof=1) / s if s > 1 else 0.0
    var_u = user_means.var(ddof=1) / u if u > 1 else 0.0
    half = float(np.sqrt(t * t * var_s + z * z * var_u))
    mean = float(m.mean())
    return {"mean": mean, "low": mean - half, "high": mean + half,
            "seed_sd": float(seed_means.std(ddof=1)) if s > 1 else None,
            "per_seed": [float(x) for x in seed_means]}


def _per_user(job: Job, metric: str, column: str) -> np.ndarray | None:
    df = pd.read_parquet(Path(job.folder) / "eval" / "returns.parquet")
    col = f"{metric}|{column}"
    if col not in df:
        return None
    reps = int(job.evaluation["replicates"])
    return df[col].to_numpy(dtype=float).reshape(reps, -1).mean(0)


def _describe(options: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={options[k]}" for k in keys if k in options) or "(defaults)"


def summarise(jobs: list[Job], results: dict[str, dict[str, Any]],
              grid_keys: list[str]) -> dict[str, Any]:
    """The content of ``sweep.json`` (without timing) from the jobs and their results."""
    done = [j for j in jobs if results.get(j.key, {}).get("status") == "done"]
    ok = {j.key for j in done}
    has_truth = bool(done) and all(results[j.key]["true"] is not None for j in done)
    metric = "true" if has_truth else "sim"
    first = results[done[0].key] if done else None
    rules = first["rules"] if first else {}
    best = {"sim": first["best_rule_sim"] if first else None,
            "true": first["best_rule_true"] if first else None}
    configs: list[dict[str, Any]] = []
    order = list(dict.fromkeys(j.config_id for j in jobs))
    for cid in order:
        cj = [j for j in jobs if j.config_id == cid]
        fin = [j for j in cj if j.key in ok]
        row: dict[str, Any] = {"config_id": cid, "options": cj[0].options,
                               "label": _describe(cj[0].options, grid_keys),
                               "seeds": [j.seed for j in fin],
                               "failed_seeds": [j.seed for j in cj if j.key not in ok]}
        for m in ("sim", "true") if has_truth else ("sim",):
            if not fin:
                row[m] = row[f"{m}_vs_best_rule"] = None
                continue
            vals = np.stack([_per_user(j, m, str(Path(j.folder) / "train")) for j in fin])
            row[m] = crossed_ci(vals)
            rule = _per_user(fin[0], m, best[m]) if best[m] else None
            row[f"{m}_vs_best_rule"] = crossed_ci(vals - rule) if rule is not None else None
        hist = [results[j.key]["eval_history"] for j in fin]
        if hist and all(len(h) == len(hist[0]) for h in hist):
            row["learning_curve"] = {
                "timesteps": [h["timesteps"] for h in hist[0]],
                "mean_return": [float(np.mean([h[i]["mean_return"] for h in hist]))
                                for i in range(len(hist[0]))]}
        row["lower_bound"] = row[metric]["low"] if row.get(metric) else None
        configs.append(row)
    ranked = [c for c in configs if c["lower_bound"] is not None]
    chosen = max(ranked, key=lambda c: c["lower_bound"])["config_id"] if ranked else None
    return {"metric": metric, "has_truth": has_truth, "chosen": chosen,
            "best_rule": best, "rules": rules,
            "n_jobs": len(jobs), "n_done": len(done), "n_failed": len(jobs) - len(done),
            "configs": configs,
            "jobs": [{"key": j.key, "config_id": j.config_id, "seed": j.seed,
                      "folder": Path(j.folder).name,
                      "status": results.get(j.key, {}).get("status", "missing"),
                      "error": results.get(j.key, {}).get("error"),
                      "sim": (results[j.key]["sim"] or {}).get("mean") if j.key in ok
                      else None,
                      "true": (results[j.key]["true"] or {}).get("mean") if j.key in ok
                      else None} for j in jobs]}


def markdown(summary: dict[str, Any]) -> str:
    """``sweep.md``: one row per config, the chosen one marked."""
    truth = summary["has_truth"]

    def ci(d: dict[str, float] | None) -> str:
        return "-" if not d else f"{d['mean']:.2f} [{d['low']:.2f}, {d['high']:.2f}]"

    head = ("| config | seeds | sim return [95% CI] | sim vs best rule |"
            + (" TRUE return [95% CI] | TRUE vs best rule |" if truth else "")
            + " seed spread (sd) | lower bound |")
    best = summary["best_rule"]
    lines = [f"Sweep: {summary['n_done']}/{summary['n_jobs']} jobs finished "
             f"({summary['n_failed']} failed or missing). CIs over seeds and users; the "
             f"chosen config (**bold**) has the highest lower bound of its "
             f"{'TRUE' if truth else 'simulated'} value. Best rule: `{best['sim']}` (sim)"
             + (f", `{best['true']}` (true)" if truth else "") + ".", "",
             head, "|" + "---|" * (head.count("|") - 1)]
    m = summary["metric"]
    for c in summary["configs"]:
        sd = (c.get(m) or {}).get("seed_sd")
        cells = [c["label"], str(len(c["seeds"])), ci(c.get("sim")),
                 ci(c.get("sim_vs_best_rule"))]
        if truth:
            cells += [ci(c.get("true")), ci(c.get("true_vs_best_rule"))]
        cells += ["-" if sd is None else f"{sd:.2f}",
                  "-" if c["lower_bound"] is None else f"{c['lower_bound']:.2f}"]
        if c["config_id"] == summary["chosen"]:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    if summary["rules"]:
        lines += ["", "Rules (same users, same random numbers): " + ", ".join(
            f"`{k}` {v['sim']:.2f}" + (f" / TRUE {v['true']:.2f}" if v.get("true") is not None
                                       else "") for k, v in summary["rules"].items())]
    failed = [j for j in summary["jobs"] if j["status"] != "done"]
    if failed:
        lines += ["", "Jobs not finished:"] + [
            f"- `{j['folder']}` seed {j['seed']}: {j['status']} {j['error'] or ''}"
            for j in failed]
    return "\n".join(lines) + "\n"


def _plots(summary: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = summary["metric"]
    rows = [c for c in summary["configs"] if c.get(m)]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.6))
    for i, c in enumerate(rows):
        v = c[m]
        ax.errorbar(v["mean"], i, xerr=[[v["mean"] - v["low"]], [v["high"] - v["mean"]]],
                    fmt="o", color="C0", capsize=3)
        ax.scatter(v["per_seed"], [i + 0.15] * len(v["per_seed"]), s=12, color="C1",
                   label="seeds" if i == 0 else None)
    rule = summary["best_rule"][m]
    if rule and summary["rules"].get(rule, {}).get(m) is not None:
        ax.axvline(summary["rules"][rule][m], color="grey", ls="--", label=rule)
    ax.set_yticks(range(len(rows)), [c["label"] for c in rows], fontsize=7)
    ax.set_xlabel(f"mean {'TRUE' if m == 'true' else 'simulated'} return per user (95% CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out / "values.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    for c in summary["configs"]:
        lc = c.get("learning_curve")
        if lc:
            ax.plot(lc["timesteps"], lc["mean_return"], marker=".", label=c["label"])
    ax.set_xlabel("env steps (user-periods)")
    ax.set_ylabel("held-out return (mean over seeds)")
    if len(summary["configs"]) <= 12:
        ax.legend(fontsize=6)
    fig.tight_layout()
    with atomic_path(out / "learning_curves.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_results(summary: dict[str, Any], timing: dict[str, Any], out: Path) -> None:
    """Write ``sweep.json`` (summary + ``timing``), ``sweep.md`` and the plots."""
    write_json(out / "sweep.json", {**summary, "timing": timing})
    write_text(out / "sweep.md", markdown(summary))
    _plots(summary, out)
