"""``report.md`` of a quickstart run folder, assembled from the stages' own JSON outputs.

Every figure in the report is read from a file a stage wrote (nothing is recomputed here), so
the report and the machine-readable results cannot disagree. Sections whose stage did not run
are left out. The report opens with the verdict (:func:`verdict`): which policy to use, by how
much it wins in the simulator, off-policy and (on a synthetic shop) in truth, and how far each
number can be trusted; it ends with the next commands, with paths as the user types them.
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
            f"features, {len(m['actions'])} actions (the commands to score customers with it "
            "are below).", ""]


def _short(policy: str, run: Path) -> str:
    """A trained policy's run folder name relative to the quickstart folder (``ppo``)."""
    if policy.startswith("rule:"):
        return policy
    try:
        return str(Path(policy).resolve().relative_to(run.resolve()))
    except ValueError:
        return policy


def _ci(d: dict[str, float], spec: str = "+.2f") -> str:
    return f"{format(d['mean'], spec)} [{format(d['low'], spec)}, {format(d['high'], spec)}]"


def _ope_value(o: dict[str, Any] | None, policy: str,
               estimator: str = "snips") -> dict[str, float] | None:
    if o is None:
        return None
    for r in o["results"]:
        if r["policy"] == policy:
            for e in r["estimates"]:
                if e["estimator"] == estimator:
                    return {**e, "ess_ratio": r["ess_ratio"]}
    return None


def deployable_candidate(ev: dict[str, Any]) -> dict[str, Any] | None:
    """The evaluation's row of the trained policy with the highest simulated return, among
    those a shop could deploy (not rules, not a reference trained in the TRUE world)."""
    trained = [r for r in ev["policies"] if not r["is_rule"] and r.get("trained_in") != "world"]
    return max(trained, key=lambda r: r["sim"]["return"]["mean"]) if trained else None


def verdict(run: str | Path) -> dict[str, Any] | None:
    """The decision the evaluation supports, and the evidence for it.

    The candidate is the trained policy with the highest simulated return. It is recommended
    only when its paired 95% interval against the best rule in the simulator lies above 0 and
    the off-policy SNIPS estimate does not contradict it (its interval reaches the best rule's);
    otherwise the recommendation is to keep the best rule. The truth of a synthetic shop is
    reported beside it as the check a real shop cannot run, never used to decide.

    Returns:
        ``None`` when the evaluation did not run, else a dict with ``recommend``,
        ``candidate``, ``best_rule``, ``sim`` (paired difference), ``ope`` (both SNIPS
        intervals), ``true`` (paired difference against the TRUE best rule, or ``None``) and
        ``reasons``.
    """
    run = Path(run)
    ev = _load(run / "evaluation" / "evaluation.json")
    if ev is None:
        return None
    cand = deployable_candidate(ev)
    if cand is None:
        return None
    best_rule = ev["best_rule_sim"]
    sim = cand["sim"]["vs_best_rule"]
    o = _load(run / "ope" / "ope.json")
    ope_c, ope_r = _ope_value(o, cand["policy"]), _ope_value(o, best_rule)
    reasons = []
    sim_wins = sim["low"] > 0
    reasons.append(f"simulator: {'wins' if sim_wins else 'does not win'} against `{best_rule}` "
                   f"({_ci(sim)} per user over {ev['horizon']} periods, paired, "
                   f"{ev['n_users']:,} held-out users)")
    ope_ok = True
    if ope_c is not None and ope_r is not None:
        ope_ok = ope_c["high"] >= ope_r["low"]
        reasons.append(f"off-policy (SNIPS, one decision): {_ci(ope_c, '.3f')} against "
                       f"{_ci(ope_r, '.3f')} per decision "
                       f"({'consistent' if ope_ok else 'contradicts the simulator'}; "
                       f"effective sample {ope_c['ess_ratio']:.1%} of the logged decisions)")
    gate_ok = True
    sel = _load(run / "selection" / "selection.json")
    if sel is not None:
        name = _short(cand["policy"], run)
        row = next((c for c in sel["candidates"] if _short(c["policy"], run) == name), None)
        opts = (_load(run / "selection" / "config.json") or {}).get("options", {})
        span = f"first {opts['horizon']} logged periods" if opts.get("horizon") else "the log"
        cfg = sel["config"]
        gate_ok = (row is not None and row["passes"] and sel["recommended"] is not None
                   and _short(sel["recommended"], run) == name)
        if row is not None:
            reasons.append(f"selection gate (`nudgegym select`, {cfg['estimator']} over {span}, "
                           f"one-sided {cfg['confidence']:.0%}, {cfg['correction']}): gain "
                           f"{row['gain']:+.3f} per user, lower bound {row['gain_low']:+.3f}: "
                           + ("the logs vouch for it" if gate_ok
                              else "the logs do not vouch for it"))
        else:
            reasons.append(f"selection gate (`nudgegym select`): `{name}` was not among its "
                           "candidates, so the logs do not vouch for it")
    true = None
    if ev.get("has_truth") and cand.get("true"):
        true = cand["true"]["vs_best_rule"]
    recommend = _short(cand["policy"], run) if (sim_wins and ope_ok and gate_ok) else best_rule
    world = [r for r in ev["policies"] if r.get("trained_in") == "world" and r.get("true")]
    ref = max(world, key=lambda r: r["true"]["return"]["mean"]) if world else None
    world_ref = None if ref is None else {"policy": _short(ref["policy"], run),
                                          "true": ref["true"]["vs_best_rule"],
                                          "best_rule_value": ref["true"]["return"]["mean"]
                                          - ref["true"]["vs_best_rule"]["mean"]}
    return {"recommend": recommend, "candidate": _short(cand["policy"], run),
            "best_rule": best_rule, "best_rule_true": ev.get("best_rule_true"), "sim": sim,
            "ope": {"candidate": ope_c, "best_rule": ope_r}, "true": true,
            "world_reference": world_ref, "reasons": reasons, "horizon": ev["horizon"]}


def _trust(run: Path, v: dict[str, Any]) -> list[str]:
    """How far each number can be trusted, from the fidelity and OPE outputs."""
    out = []
    f = _load(run / "fidelity" / "fidelity.json")
    if f is not None:
        errs = {k: x["rel_error"] for k, x in f["replay"]["summary"].items()
                if x["rel_error"] is not None}
        worst = max(errs, key=lambda k: abs(errs[k])) if errs else None
        line = "- **Simulator**: "
        if worst is not None:
            line += (f"replaying the logged actions, its largest error against the log is "
                     f"{errs[worst]:+.0%} ({worst}) on held-out users")
        pol = f.get("policies")
        if pol:
            line += (f"; against the TRUE world it misvalues rules by up to "
                     f"{pol['max_abs_rel_error']:.0%} and ranks them with Spearman "
                     f"{pol['spearman']:.2f} "
                     f"({'same' if pol['ranking_identical'] else 'not the same'} order)")
        out.append(line + ". A simulated win smaller than these errors is not a win.")
    c = v["ope"]["candidate"]
    if c is not None:
        out.append(f"- **Off-policy**: uses only logged decisions, but values one decision at a "
                   f"time (not the delayed effects) and rests on {c['ess_ratio']:.1%} of the "
                   "logs as effective sample; wide intervals mean the logs cannot tell.")
    if v["true"] is not None:
        out.append("- **Truth** (synthetic shop only): exact up to the sampling interval shown; "
                   "the check a real shop does not have.")
    return out


def _verdict(run: Path) -> list[str]:
    v = verdict(run)
    if v is None:
        return []
    if v["recommend"] == v["best_rule"]:
        head = (f"**Keep the best rule, `{v['best_rule']}`.** The trained policy "
                f"`{v['candidate']}` is not shown to beat it.")
    else:
        head = (f"**Use `{v['recommend']}`.** It beats the best rule `{v['best_rule']}` in the "
                "simulator, and the logs vouch for its gain.")
    lines = ["## Verdict", "", head, "",
             f"`{v['candidate']}` against `{v['best_rule']}` (money per user over "
             f"{v['horizon']} periods; 95% intervals):", ""]
    lines += [f"- {r}" for r in v["reasons"]]
    if v["true"] is not None:
        t = v["true"]
        word = ("beats" if t["low"] > 0 else "loses to" if t["high"] < 0
                else "is not shown to differ from")
        lines.append(f"- in TRUTH (the synthetic world): {word} the truly best rule "
                     f"`{v['best_rule_true']}`: {_ci(t)} per user, paired")
    room = (_load(run / "evaluation" / "evaluation.json") or {}).get("room")
    w = v["world_reference"]
    if w is not None:
        t = w["true"]
        pct = 100 * t["mean"] / w["best_rule_value"] if w["best_rule_value"] else float("nan")
        if t["low"] > 0:
            found = ("beats it: the method finds room where the dynamics are exact, so what a "
                     "simulator-trained policy misses of it is the simulator's error")
        elif room is not None and room["room_pct"]["low"] <= 0:
            found = "not shown to beat it, and the room stage finds little room to take"
        else:
            found = ("not shown to beat it: the method misses the room even with the true "
                     "dynamics")
        lines.append(f"- trained in the TRUE world (`{w['policy']}`: the rule tuned there and "
                     f"improved by rollouts; a check a real shop cannot run): {_ci(t)} per user "
                     f"against `{v['best_rule_true']}` ({pct:+.1f}%), paired: {found}")
    if room is not None:
        r, o = room["room_pct"], room["oracle_room_pct"]
        lines.append(f"- the room (TRUE, `nudgegym room`): the best policy that sees only what a "
                     f"deployed policy sees beats the best tuned rule by {r['mean']:+.1f}% "
                     f"[{r['low']:+.1f}, {r['high']:+.1f}] (an oracle that knows each user's "
                     f"segment: {o['mean']:+.1f}%); read the trained policy against that")
    lines += ["", "How much to trust each number:", ""] + _trust(run, v) + [""]
    return lines


def _next_commands(run: Path, out_text: str) -> list[str]:
    v = verdict(run)
    o = out_text.rstrip("/")
    lines = ["## Next commands", "", "```bash"]
    if (run / "export" / "manifest.json").is_file():
        lines += ["# decisions for every customer, from their state at the end of the log",
                  f"nudgegym features {o}/data --out users.parquet",
                  f"nudgegym score --model {o}/export --input users.parquet "
                  "--out decisions.parquet",
                  "# (or in one step: "
                  f"nudgegym score --model {o}/export --data {o}/data --out decisions.parquet)"]
    if v is not None and not v["candidate"].startswith("rule:"):
        c = v["candidate"]
        lines += ["# train the policy longer and evaluate it again",
                  f"nudgegym train-policy --predictor {o}/predictor --data {o}/data "
                  f"--out {o}/{c} --resume --timesteps 1000000",
                  f"nudgegym evaluate --predictor {o}/predictor --data {o}/data "
                  f"--policy {o}/{c} --policy {v['best_rule']} --out {o}/evaluation2"]
    lines += ["# your own shop: import its logs, then run the same stages on them",
              "nudgegym import transactions orders.csv --user-col customer --time-col "
              "ordered_at --amount-col total --out data/myshop",
              "```", ""]
    return lines


def write_report(run: str | Path) -> Path:
    """Write ``report.md`` into a quickstart run folder from its stages' outputs."""
    run = Path(run)
    q = _load(run / "quickstart.json") or {}
    lines = ["# nudgegym quickstart report", ""] + _verdict(run)
    t = q.get("timings_seconds")
    if t:
        lines += [f"Total time {t.get('total', sum(t.values())):.0f} s: "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in t.items() if k != "total") + ".", ""]
    for part in (_dataset, _predictor, _fidelity, _policies, _ope, _export):
        lines += part(run)
    lines += _next_commands(run, q.get("out", str(run)))
    return write_text(run / "report.md", "\n".join(lines).rstrip() + "\n")
