"""May the learned shop be used to choose between policies? Thresholds, verdict and report.

The gate reads the result of ``nudgegym fidelity`` (``{"replay": ..., "policies": ...}``) and
checks it against stated thresholds (the defaults are the targets the simulator is held to):

* replay of the logged actions: visit, purchase and revenue rates over the window each within
  ``replay_rel_error`` of the log, and no single period off by more than ``period_rel_error``;
* rule policies (synthetic shop only): every rule's simulated value within
  ``value_rel_error`` of its TRUE value, Spearman rank correlation >= ``min_spearman`` over at
  least ``min_rules`` rules, and regret@1 (TRUE value lost by picking the simulator's best rule,
  relative to the best rule's TRUE value) <= ``max_regret``.

Without truth only the replay checks apply, and the verdict says that ranking was not checked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPLAY_KEYS = (("visit_rate", "visit_rate"), ("purchase_rate", "purchase_rate"),
               ("revenue_per_user_period", "revenue_per_user"))


@dataclass(frozen=True)
class FidelityThresholds:
    """Thresholds of the fidelity gate (fractions, e.g. ``0.05`` = 5%)."""

    replay_rel_error: float = 0.05
    period_rel_error: float = 0.10
    value_rel_error: float = 0.10
    min_spearman: float = 0.9
    min_rules: int = 9
    max_regret: float = 0.02

    def __post_init__(self) -> None:
        for name in ("replay_rel_error", "period_rel_error", "value_rel_error", "max_regret"):
            v = getattr(self, name)
            if not (v >= 0):
                raise ValueError(f"`{name}` must be >= 0; got {v!r}")
        if not (-1 <= self.min_spearman <= 1):
            raise ValueError(f"`min_spearman` must be in [-1, 1]; got {self.min_spearman!r}")
        if not isinstance(self.min_rules, int) or self.min_rules < 2:
            raise ValueError(f"`min_rules` must be an integer >= 2; got {self.min_rules!r}")


def _check(name: str, value: float | None, op: str, threshold: float) -> dict:
    ok = value is not None and np.isfinite(value) and (
        value <= threshold if op == "<=" else value >= threshold)
    return {"check": name, "value": value, "op": op, "threshold": threshold, "passed": bool(ok)}


def fidelity_gate(result: dict, thresholds: FidelityThresholds | None = None) -> dict:
    """Check a fidelity result against ``thresholds``.

    Returns:
        ``thresholds``, ``checks`` (one dict per check: ``check``, ``value``, ``op``,
        ``threshold``, ``passed``), ``replay_ok``, ``ranking_ok`` (None without truth),
        ``usable_for_choosing`` and the one-sentence ``verdict``.
    """
    th = thresholds or FidelityThresholds()
    rep = result["replay"]
    checks, not_checked = [], []
    for skey, pkey in REPLAY_KEYS:
        rel = rep["summary"][skey]["rel_error"]
        if rel is None and not rep["summary"][skey]["log"]:
            # the log never shows this outcome (no visit events, no prices): not informed,
            # so there is nothing to compare, rather than a failed check
            not_checked.append(skey)
            continue
        checks.append(_check(f"replay {skey} |relative error|", None if rel is None else abs(rel),
                             "<=", th.replay_rel_error))
        checks.append(_check(f"replay {pkey} worst period |relative error|",
                             rep["max_period_rel_error"][pkey], "<=", th.period_rel_error))
    replay_ok = all(c["passed"] for c in checks)
    ranking_ok = None
    pol = result.get("policies")
    if pol is not None:
        rank_checks = [
            _check("rules: max |sim/true - 1|", pol["max_abs_rel_error"], "<=",
                   th.value_rel_error),
            _check("rules: Spearman", pol["spearman"], ">=", th.min_spearman),
            _check("rules: number compared", float(pol["n_rules"]), ">=", float(th.min_rules)),
            _check("rules: regret@1", pol["regret_at_1"], "<=", th.max_regret),
        ]
        checks += rank_checks
        ranking_ok = all(c["passed"] for c in rank_checks)
    usable = replay_ok and bool(ranking_ok)
    failed = [c["check"] for c in checks if not c["passed"]]
    if pol is None:
        verdict = ("No: without a true world the ranking of policies was not checked"
                   + ("" if replay_ok else f", and the replay fails ({'; '.join(failed)})")
                   + ", so this simulator may not yet be used to choose between policies.")
    elif usable:
        verdict = (f"Yes: every check holds (replay within {th.replay_rel_error:.0%}, rule "
                   f"values within {th.value_rel_error:.0%}, Spearman "
                   f"{pol['spearman']:.2f}, regret@1 {pol['regret_at_1']:.1%}), so this "
                   "simulator may be used to choose between policies.")
    else:
        verdict = (f"No: {len(failed)} of {len(checks)} checks fail ({'; '.join(failed)}), so "
                   "this simulator may not be used to choose between policies.")
    return {"thresholds": asdict(th), "checks": checks, "not_checked": not_checked,
            "replay_ok": replay_ok,
            "ranking_ok": ranking_ok, "usable_for_choosing": usable, "verdict": verdict}


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{v:+.1%}" if pct else f"{v:.3f}"


def fidelity_markdown(result: dict, plots: dict[str, str]) -> str:
    """The fidelity report (markdown): verdict, checks, replay, per-action, rules, plots."""
    gate, rep = result["gate"], result["replay"]
    lines = ["# Fidelity of the learned shop", "", f"**{gate['verdict']}**", "",
             "## Gate", "", "| check | value | threshold | passed |", "|---|---|---|---|"]
    for c in gate["checks"]:
        v = c["value"]
        shown = f"{v:.3f}" if v is not None and np.isfinite(v) else "-"
        lines.append(f"| {c['check']} | {shown} | {c['op']} {c['threshold']:g} | "
                     f"{'yes' if c['passed'] else '**no**'} |")
    if gate.get("not_checked"):
        lines += ["", "Not checked (the log never shows them): "
                  + ", ".join(gate["not_checked"]) + "."]
    lines += ["", f"## Replay of the logged actions ({rep['users']} users from period "
              f"{rep['start_period']}, {rep['horizon']} periods, {rep['replicates']} "
              "replicates)", "", "| metric | simulated | logged | rel. error | log rel. SE | "
              "worst period |", "|---|---|---|---|---|---|"]
    worst = dict(rep["max_period_rel_error"])
    worst["revenue_per_user_period"] = worst.get("revenue_per_user")
    for k, v in rep["summary"].items():
        w = worst.get(k)
        se = v.get("log_rel_se")
        lines.append(f"| {k} | {v['sim']:.4f} | {v['log']:.4f} | {_fmt(v['rel_error'])} | "
                     f"{'-' if se is None else f'{se:.1%}'} | {'-' if w is None else f'{w:.1%}'} |")
    lines += ["", "Sampling noise of the log's per-period means (median relative SE over "
              "periods): " + ", ".join(f"{k} {v:.1%}" for k, v in
                                       rep.get("period_rel_se_log", {}).items()) + ".", "",
              "Per-user totals over the window (simulated vs logged distributions):", "",
              "| total | mean sim | mean log | KS | Wasserstein |", "|---|---|---|---|---|"]
    for k, v in rep["per_user_totals"].items():
        lines.append(f"| {k} | {v['mean_sim']:.3f} | {v['mean_log']:.3f} | {v['ks']:.3f} | "
                     f"{v['wasserstein']:.3f} |")
    lines += ["", "By logged action (the same user-periods, simulated vs logged):", "",
              "| group | user-periods | visit rel. error | purchase rel. error | "
              "revenue rel. error |", "|---|---|---|---|---|"]
    for g, v in rep["by_action"].items():
        sm = v["summary"]
        lines.append(f"| {g} | {v['n_log']} | {_fmt(sm['visit_rate']['rel_error'])} | "
                     f"{_fmt(sm['purchase_rate']['rel_error'])} | "
                     f"{_fmt(sm['revenue_per_user']['rel_error'])} |")
    pol = result.get("policies")
    if pol is not None:
        lines += ["", f"## Rule policies: simulated vs TRUE value per user ({pol['horizon']} "
                  f"periods, {pol['users']} users)", "",
                  "| policy | simulated | true | sim/true (95% CI) | rank sim | rank true |",
                  "|---|---|---|---|---|---|"]
        for r in pol["rows"]:
            lines.append(f"| {r['policy']} | {r['sim']:.3f} | {r['true']:.3f} | "
                         f"{r['ratio']:.3f} ({r['ratio_low']:.3f} .. {r['ratio_high']:.3f}) | "
                         f"{r['rank_sim']} | {r['rank_true']} |")
        lines += ["", f"Spearman {pol['spearman']:.3f} over {pol['n_rules']} rules; the "
                  f"simulator's best rule is {pol['best_sim']}, the TRUE best is "
                  f"{pol['best_true']}; regret@1 {pol['regret_at_1']:.1%} of the best TRUE "
                  "value."]
    lines += action_effects_markdown(result.get("action_effects"))
    lines += [""] + [f"![{k}]({v})" for k, v in plots.items()] + [""]
    return "\n".join(lines)


def action_effects_markdown(ae: dict | None) -> list[str]:
    """The report's per-action effect section (``nudgegym fidelity``'s ``action_effects``)."""
    if ae is None:
        return []
    lines = ["", "## Per-action effects from logged propensities", ""]
    if "skipped" in ae:
        return lines + [f"Skipped: {ae['skipped']}."]
    lines += [f"{ae['users']} users, periods {ae['start_period']} .. "
              f"{ae['start_period'] + ae['window'] - 1}. Per logged action ``a`` at period t: "
              "the logged reward summed over t .. t+K-1, each row weighted by 1/pscore "
              "(self-normalised per action), against the learned shop started from the same "
              "row's true history and replaying the same logged actions. `bias` = sim - log; "
              "`adv. bias` = bias(a) - bias(none), the shop's error in the action's advantage. "
              f"{1 - ae['alpha']:.0%} bootstrap intervals over users."]
    for k, block in ae["horizons"].items():
        truth = any("true" in r for r in block["actions"].values())
        lines += ["", f"K = {k}:", "", "| action | rows | log (IPW) | CI | sim | bias | "
                  "adv. bias | CI |" + (" true | sim - true | adv. sim - true |" if truth else ""),
                  "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if truth else "")]
        for name, r in block["actions"].items():
            adv = r.get("advantage_bias")
            ci = (f"{r['advantage_bias_low']:+.3f} .. {r['advantage_bias_high']:+.3f}"
                  if adv is not None else "-")
            line = (f"| {name} | {r['n_rows']} | {r['log']:.3f} | {r['log_low']:.3f} .. "
                    f"{r['log_high']:.3f} | {r['sim']:.3f} | {r['bias']:+.3f} | "
                    f"{'-' if adv is None else f'{adv:+.3f}'} | {ci} |")
            if truth:
                at = r.get("advantage_true")
                err = "-" if at is None else f"{r['advantage_sim'] - at:+.3f}"
                line += f" {r['true']:.3f} | {r['sim_minus_true']:+.3f} | {err} |"
            lines.append(line)
    return lines


def plot_rules(policies: dict, path: str | Path) -> Path:
    """Simulated vs TRUE value of each rule (95% intervals) with the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from predictors.io import atomic_path

    rows = policies["rows"]
    t = np.array([r["true"] for r in rows])
    s = np.array([r["sim"] for r in rows])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.errorbar(t, s, xerr=1.96 * np.array([r["true_se"] for r in rows]),
                yerr=1.96 * np.array([r["sim_se"] for r in rows]), fmt="o")
    for r in rows:
        ax.annotate(r["policy"].removeprefix("rule:"), (r["true"], r["sim"]), fontsize=7)
    lo, hi = min(t.min(), s.min()), max(t.max(), s.max())
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":")
    ax.set_xlabel("TRUE value per user")
    ax.set_ylabel("simulated value per user")
    ax.set_title("Rule policies: simulator vs world")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
