"""``report.md`` of a quickstart run folder, assembled from the stages' own JSON outputs.

Every figure in the report is read from a file a stage wrote (nothing is recomputed here), so
the report and the machine-readable results cannot disagree. Sections whose stage did not run
are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from predictors.io import write_text


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _img(run: Path, rel: str, alt: str) -> str:
    return f"![{alt}]({rel})\n" if (run / rel).is_file() else ""


def _dataset(run: Path) -> list[str]:
    s = _load(run / "inspect" / "summary.json")
    if s is None:
        return []
    ev = ", ".join(f"{k} {v:,}" for k, v in s.get("event_types", {}).items())
    lines = ["## The shop", "",
             f"{s['users']:,} users over {s['periods']} periods of {s['period']}; events: {ev}.",
             f"Purchase rate {s['purchase_rate']:.4f} per user-period; revenue "
             f"{s['revenue_total']:,.0f} in total, {s['revenue_per_user']:,.2f} per user.", ""]
    acts = s.get("actions") or {}
    if acts:
        lines += ["| action | logged | propensity min | max |", "|---|---|---|---|"]
        for name, a in acts.items():
            lines.append(f"| {name} | {a.get('logged', 0):,} | {a.get('propensity_min', '-')} | "
                         f"{a.get('propensity_max', '-')} |")
        lines.append("")
    return lines


def _predictor(run: Path) -> list[str]:
    m = _load(run / "predictor_eval" / "metrics.json")
    if m is None:
        return []
    lines = ["## Behavior predictor", "",
             f"Family `{m['family']}`, evaluated on {m['scope']} ({m['n_users']:,} users).", "",
             "| head | AUC | log-loss | ECE |", "|---|---|---|---|"]
    for head, h in m["heads"].items():
        if "auc" in h:
            lines.append(f"| {head} | {h['auc']:.3f} | {h['log_loss']:.4f} | {h['ece']:.4f} |")
    cf = m.get("counterfactual")
    if cf:
        lines += ["", "Counterfactual accuracy against the true world (all actions, test users): "
                  + ", ".join(f"MAE {k} {v:.4f}" for k, v in cf["mae"].items()) + ".", "",
                  "| action | predicted effect on P(purchase) | true | relative error |",
                  "|---|---|---|---|"]
        for a, eff in cf["effects"].items():
            e = eff.get("p_purchase")
            if e:
                lines.append(f"| {a} | {e['predicted']:+.4f} | {e['true']:+.4f} | "
                             f"{e['relative_error']:.1%} |")
    lines += ["", _img(run, "predictor/loss_curves.png", "loss curves")]
    return lines


def _fidelity(run: Path) -> list[str]:
    f = _load(run / "fidelity" / "fidelity.json")
    if f is None:
        return []
    rep = f["replay"]
    lines = ["## Simulated against logged behaviour", "",
             f"The learned shop replays the logged actions of {rep['users']:,} held-out users "
             f"for {rep['horizon']} periods from period {rep['start_period']}.", "",
             "| metric | simulated | logged | relative error |", "|---|---|---|---|"]
    for k, v in rep["summary"].items():
        rel = "-" if v["rel_error"] is None else f"{v['rel_error']:+.1%}"
        lines.append(f"| {k} | {v['sim']:.4f} | {v['log']:.4f} | {rel} |")
    lines += ["", _img(run, "fidelity/fidelity_replay.png", "replay")]
    pol = f.get("policies")
    if pol:
        lines += ["Rule policies in the learned shop against their TRUE value (same users):", "",
                  "| policy | simulated | true | relative error | rank sim | rank true |",
                  "|---|---|---|---|---|---|"]
        for r in pol["rows"]:
            lines.append(f"| {r['policy']} | {r['sim']:.2f} | {r['true']:.2f} | "
                         f"{r['rel_error']:+.1%} | {r['rank_sim']} | {r['rank_true']} |")
        lines += ["", f"Largest relative error {pol['max_abs_rel_error']:.1%}; ranking "
                  f"{'identical' if pol['ranking_identical'] else 'not identical'} "
                  f"(Spearman {pol['spearman']:.2f}).", ""]
    gate = f.get("gate")
    if gate:
        lines += [f"**Fidelity gate.** {gate['verdict']} (details: fidelity/report.md)", ""]
    return lines


def _policies(run: Path) -> list[str]:
    md = run / "evaluation" / "evaluation.md"
    if not md.is_file():
        return []
    lines = ["## Policies", "", md.read_text().strip(), ""]
    for algo in ("ppo", "dqn"):
        m = _load(run / algo / "metrics.json")
        if m:
            lines.append(f"- `{algo}`: {m['timesteps']:,} env steps in "
                         f"{m['train_seconds']:.0f} s ({m['fps']:,.0f} steps/s).")
    lines.append("")
    for p in sorted((run / "evaluation").glob("*.png")):
        lines.append(_img(run, f"evaluation/{p.name}", p.stem))
    return lines


def _ope(run: Path) -> list[str]:
    o = _load(run / "ope" / "ope.json")
    if o is None:
        return []
    ests = [e["estimator"] for e in o["results"][0]["estimates"]]
    lines = ["## Off-policy evaluation on the logs", "",
             f"{o['n_rounds']:,} logged decisions; the logging policy earned "
             f"{o['logging_mean_reward']:.3f} per decision ({o['reward']} reward). One-step "
             "estimators give value per decision, sequential ones per user over the logged "
             "periods (95% bootstrap intervals).", "",
             "| policy | ESS | " + " | ".join(ests) + " |", "|---" * (len(ests) + 2) + "|"]
    for r in o["results"]:
        cells = [f"{e['mean']:.3f} [{e['low']:.3f}, {e['high']:.3f}]" for e in r["estimates"]]
        lines.append(f"| {r['policy']} | {r['ess_ratio']:.1%} | " + " | ".join(cells) + " |")
    truth = o.get("truth")
    if truth:
        lines += ["", "TRUE value per user-period of following each policy in every logged "
                  "period (world rollouts from the logged users' start states): "
                  + ", ".join(f"`{k}` {v:.3f}" for k, v in truth.items()) + ". The one-step "
                  "estimators value one decision with the logging policy everywhere else, so "
                  "they miss the delayed effects this value includes; the sequential "
                  "estimators (`nudgegym ope` without `--no-sequential`) target it."]
    lines += ["", _img(run, "ope/ope_decision.png", "OPE estimates")]
    return lines


def _export(run: Path) -> list[str]:
    m = _load(run / "export" / "manifest.json")
    if m is None:
        return []
    return ["## Export", "",
            f"`{m['algo']}` exported to `export/{m['model_file']}` ({m['format']}, sha256 "
            f"`{m['sha256'][:16]}...`), {len(m['inputs']['obs']['features'])} observation "
            f"features, {len(m['actions'])} actions. Score with "
            "`nudgegym score --model export --input users.parquet --out decisions.parquet`.", ""]


def write_report(run: str | Path) -> Path:
    """Write ``report.md`` into a quickstart run folder from its stages' outputs."""
    run = Path(run)
    q = _load(run / "quickstart.json") or {}
    lines = ["# nudgegym quickstart report", ""]
    t = q.get("timings_seconds")
    if t:
        lines += [f"Total time {t.get('total', sum(t.values())):.0f} s: "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in t.items() if k != "total") + ".", ""]
    for part in (_dataset, _predictor, _fidelity, _policies, _ope, _export):
        lines += part(run)
    return write_text(run / "report.md", "\n".join(lines).rstrip() + "\n")
