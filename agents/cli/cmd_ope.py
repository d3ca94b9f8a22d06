"""``nudgegym ope`` and ``nudgegym bench ope*``: off-policy evaluation on datasets, benchmarks
and real-data checks.

* ``ope DATA --policy ...``: one-step and sequential estimates of target policies from a
  dataset's logged decisions (propensities required).
* ``bench ope``: speed of the six one-step estimators with bootstrap intervals on synthetic
  logs with a known answer.
* ``bench ope-obd``: the Bernoulli-TS policy's click rate estimated from the Open Bandit
  Dataset's uniform-random logs, against its on-policy click rate.
* ``bench ope-hillstrom``: targeting policies' visit / conversion / spend on the Hillstrom
  e-mail experiment, off-policy and on the customers whose random arm matches the policy.
* ``bench ope-accuracy``: the sequential estimators against the TRUE value (simulated in the
  world) of rules and trained policies, over repeated generated datasets.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import typer
from tqdm import tqdm

from agents.cli._app import app, bench_app, output_folder
from predictors.io import check_out_folder, write_json, write_run_config

#: Public data sets live in ``shared/data`` beside the checkout.
_SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _one_step_estimators() -> list[Any]:
    from agents.ope import DM, DR, IPS, SNDR, SNIPS, SwitchDR

    return [DM(), IPS(), SNIPS(), DR(), SNDR(), SwitchDR()]


def _write(out: Path | None, command: str, options: dict[str, Any], seed: int,
           results: dict[str, Any]) -> None:
    if out is None:
        return
    with output_folder(out) as tmp:
        write_run_config(tmp, command, options, seed=seed)
        write_json(tmp / "bench.json", results)
    typer.echo(f"wrote {out / 'bench.json'}")


@bench_app.command("ope")
def bench_ope_cmd(
    rounds: int = typer.Option(1_000_000, "--rounds", help="Logged rounds."),
    boot: int = typer.Option(200, "--boot", help="Bootstrap resamples per estimator."),
    actions: int = typer.Option(4, "--actions", help="Number of actions."),
    dim: int = typer.Option(5, "--dim", help="Context dimension."),
    scheme: str = typer.Option("double-or-nothing", "--scheme",
                               help="Bootstrap weights: double-or-nothing or poisson."),
    seed: int = typer.Option(0, help="Seed of the data and the bootstrap."),
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """Time DM, IPS, SNIPS, DR, SNDR and Switch-DR (estimate + bootstrap interval)."""
    if out is not None:
        check_out_folder(out)
    from agents.ope.synthetic import make_synthetic_bandit

    if rounds < 10 or boot < 2:
        raise ValueError(f"--rounds must be >= 10 and --boot >= 2; got {rounds}, {boot}")
    t0 = time.perf_counter()
    bandit = make_synthetic_bandit(rounds, actions, dim, seed=seed)
    gen_s = time.perf_counter() - t0
    truth = bandit.true_value
    from agents.ope import RidgeRewardModel, cross_fit_rewards

    t0 = time.perf_counter()
    q = cross_fit_rewards(bandit.data, RidgeRewardModel(), n_folds=2, seed=seed)
    fit_s = time.perf_counter() - t0
    rows = []
    total = fit_s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in tqdm(_one_step_estimators(), desc="estimators", leave=False):
            t = time.perf_counter()
            iv = est.interval(bandit.data, bandit.action_dist,
                              q if est.requires_reward_model else None, n_boot=boot, seed=seed,
                              scheme=scheme)
            sec = time.perf_counter() - t
            total += sec
            rows.append({"estimator": est.name, "seconds": sec, "mean": iv.mean, "low": iv.low,
                         "high": iv.high, "rel_error": abs(iv.mean - truth) / truth,
                         "covers_truth": iv.low <= truth <= iv.high, "kind": iv.kind})
    typer.echo(f"{rounds:,} rounds, {actions} actions, {boot} bootstrap resamples ({scheme}); "
               f"true value {truth:.5f} (data generated in {gen_s:.2f} s)")
    typer.echo(f"{'estimator':<10} {'seconds':>8} {'estimate':>9} {'95% interval':>22} "
               f"{'rel.err':>8} covers")
    typer.echo(f"{'(ridge reward model, 2-fold cross-fit, shared by DM/DR/SNDR/Switch-DR)'}"
               f" {fit_s:.2f} s")
    for r in rows:
        typer.echo(f"{r['estimator']:<10} {r['seconds']:8.2f} {r['mean']:9.5f} "
                   f"[{r['low']:9.5f}, {r['high']:9.5f}] {r['rel_error']:8.2%} "
                   f"{'yes' if r['covers_truth'] else 'no':<6} {r['kind']}")
    typer.echo(f"{'total':<10} {total:8.2f}  (conditional: the shared reward model is held "
               "fixed across resamples)")
    _write(out, "bench ope", {"rounds": rounds, "boot": boot, "actions": actions, "dim": dim,
                              "scheme": scheme}, seed,
           {"rounds": rounds, "boot": boot, "scheme": scheme, "true_value": truth,
            "total_seconds": total,
                  "data_seconds": gen_s, "reward_model_seconds": fit_s,
                  "estimators": rows})


@bench_app.command("ope-obd")
def bench_ope_obd_cmd(
    data: Path = typer.Option(_SHARED_DATA / "obd", "--data", help="Open Bandit Dataset folder."),
    campaign: list[str] = typer.Option(["all", "men", "women"], "--campaign",
                                       help="Campaign(s): all, men, women."),
    method: list[str] = typer.Option(["frequency", "posterior"], "--method",
                                     help="How to compute BTS's probabilities."),
    boot: int = typer.Option(1000, "--boot", help="Bootstrap resamples."),
    n_sim: int = typer.Option(100_000, "--n-sim", help="Monte-Carlo draws of the posteriors."),
    seed: int = typer.Option(0, help="Seed of the Monte Carlo, folds and bootstrap."),
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """Estimate the BTS policy's click rate from the random logs; compare with its own logs."""
    if out is not None:
        check_out_folder(out)
    from agents.ope.obd import BTSConfig, evaluate_obd

    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jobs = [(c, m) for c in campaign for m in method]
        for c, m in tqdm(jobs, desc="campaigns", leave=False):
            results.append(evaluate_obd(data, c, _one_step_estimators(),
                                        BTSConfig(method=m, n_sim=n_sim, seed=seed),
                                        n_boot=boot, seed=seed))
    for r in results:
        on, ag = r["on_policy"], r["agreement"]
        typer.echo(f"\n[{r['campaign']}] BTS probabilities by {r['method']}: agreement with "
                   f"the logged BTS propensities: log-corr {ag['log_corr']:.3f}, corr "
                   f"{ag['corr']:.3f}, MAE {ag['mae']:.4f}, mean ratio {ag['mean_ratio']:.3f}")
        typer.echo(f"  on-policy BTS CTR {on['mean']:.5f} [{on['low']:.5f}, {on['high']:.5f}]"
                   f"; random-log CTR {r['random_ctr']:.5f}")
        typer.echo(f"  {'estimator':<10} {'estimate':>9} {'95% interval':>22} {'rel.err':>8}")
        for e in r["estimates"]:
            typer.echo(f"  {e['estimator']:<10} {e['mean']:9.5f} [{e['low']:9.5f}, "
                       f"{e['high']:9.5f}] {e['rel_error']:8.1%}")
    _write(out, "bench ope-obd", {"data": str(data), "campaign": campaign, "method": method,
                                  "boot": boot, "n_sim": n_sim}, seed, {"results": results})


@bench_app.command("ope-hillstrom")
def bench_ope_hillstrom_cmd(
    data: Path = typer.Option(_SHARED_DATA / "hillstrom" / "hillstrom.csv", "--data",
                              help="hillstrom.csv"),
    boot: int = typer.Option(500, "--boot", help="Bootstrap resamples."),
    seed: int = typer.Option(0, help="Seed of the folds and bootstrap."),
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """Value of targeting policies by IPS / SNIPS / DR beside the matched-arm value."""
    if out is not None:
        check_out_folder(out)
    from agents.ope import DR, IPS, SNIPS
    from agents.ope.hillstrom import evaluate_hillstrom, load_hillstrom

    df = load_hillstrom(data)
    rows = evaluate_hillstrom(df, [IPS(), SNIPS(), DR()], n_boot=boot, seed=seed)
    typer.echo(f"{len(df):,} customers, logging policy uniform 1/3; 95% intervals "
               f"(bootstrap {boot}; 'matched' = normal interval on the matching arm)")
    header = f"{'policy':<24} {'outcome':<10} {'mailed':>6} "
    ests = list(dict.fromkeys(r["estimator"] for r in rows))
    typer.echo(header + " ".join(f"{e:>25}" for e in ests))
    keyed: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        keyed.setdefault((r["policy"], r["outcome"]), {})[r["estimator"]] = r
    for (policy, outcome), by_est in keyed.items():
        fmt = "{:.4f}" if outcome != "spend" else "{:.3f}"
        cells = []
        for e in ests:
            r = by_est[e]
            cells.append(f"{fmt.format(r['mean'])} [{fmt.format(r['low'])}, "
                         f"{fmt.format(r['high'])}]".rjust(25))
        mailed = next(iter(by_est.values()))["emailed"]
        typer.echo(f"{policy:<24} {outcome:<10} {mailed:6.1%} " + " ".join(cells))
    _write(out, "bench ope-hillstrom", {"data": str(data), "boot": boot}, seed, {"rows": rows})


@app.command("ope")
def ope_cmd(
    data: Path = typer.Argument(..., help="Dataset folder with logged propensities, or a "
                                "decision log of `nudgegym score` (parquet/CSV) joined with "
                                "the observed reward."),
    policy: list[str] = typer.Option([], "--policy",
                                     help="Target policy: rule:NAME[:...], an ONNX export "
                                          "folder or a train-policy run folder (repeatable)."),
    target_probs: list[Path] = typer.Option(
        [], "--target-probs", help="File of target probabilities (prob__<action> columns; "
        "keyed by user_id, period on a dataset; by user_id or row order on a decision log); "
        "named by its file name (repeatable)."),
    reward: str = typer.Option("net", help="Dataset reward per period: net, revenue or "
                               "purchase; on a decision log, the reward column's name "
                               "(default there: reward)."),
    sequential: bool = typer.Option(True, help="Also run the per-user estimators (PDIS, "
                                               "WPDIS, fqe-lin, mis, mdr, dr-lin, "
                                               "wdr-lin)."),
    gamma: float = typer.Option(1.0, help="Discount of the sequential estimators."),
    boot: int = typer.Option(500, "--boot", help="Bootstrap resamples."),
    seed: int = typer.Option(0, help="Seed of the folds and the bootstrap."),
    memory_limit: str = typer.Option("4GB", help="DuckDB memory cap for the panel."),
    predictor: Path | None = typer.Option(None, "--predictor", help="Predictor run folder "
                                          "fitted on this shop: adds sim (the learned "
                                          "simulator's value) and sim-dr (its doubly robust "
                                          "correction), per user."),
    sim_replicates: int = typer.Option(1, "--sim-replicates", help="Simulator rollouts per "
                                       "logged state and action."),
    sim_horizon: int = typer.Option(0, "--sim-horizon", help="Cap on the periods of sim-dr's "
                                    "rollouts from later logged states (0 = to the end)."),
    out: Path = typer.Option(..., "--out", help="Run folder: config.json and ope.json."),
) -> None:
    """Estimate target policies' value from logged decisions (OPE)."""
    from agents.ope.decisions import read_table
    from agents.ope.report import decision_log_report, ope_report, plot_ope

    if not policy and not target_probs:
        raise ValueError("give at least one --policy or --target-probs")
    with output_folder(out) as tmp:
        write_run_config(tmp, "ope", {"data": str(data), "policy": policy,
                                      "target_probs": [str(p) for p in target_probs],
                                      "reward": reward, "sequential": sequential, "gamma": gamma,
                                      "boot": boot, "memory_limit": memory_limit,
                                      "predictor": str(predictor) if predictor else None,
                                      "sim_replicates": sim_replicates,
                                      "sim_horizon": sim_horizon}, seed=seed)
        tables = {p.name: read_table(p) for p in target_probs}
        if data.is_file():
            if policy or predictor:
                raise ValueError("on a decision log, give the targets as --target-probs files "
                                 "(and no --predictor)")
            rep = decision_log_report(read_table(data), tables,
                                      reward="reward" if reward == "net" else reward,
                                      sequential=sequential, gamma=gamma, n_boot=boot, seed=seed)
        else:
            from agents.ope.model_based import SimulatorConfig

            sim_cfg = SimulatorConfig(replicates=sim_replicates,
                                      rollout_horizon=sim_horizon or None, gamma=gamma,
                                      seed=seed)
            rep = ope_report(data, list(policy), reward=reward, sequential=sequential, gamma=gamma,
                             n_boot=boot, seed=seed, memory_limit=memory_limit,
                             target_tables=tables, predictor=predictor, sim_config=sim_cfg)
        typer.echo(f"{rep['n_rounds']:,} logged decisions of {rep['n_users']:,} users; reward "
                   f"{rep['reward']}; logging policy's mean reward "
                   f"{rep['logging_mean_reward']:.4f} per decision")
        prop = rep.get("propensity")
        if prop:
            typer.echo(f"warning: the logged propensities were estimated at import "
                       f"({prop['model']}, log loss {prop['log_loss']:.3f} vs "
                       f"{prop['log_loss_marginal']:.3f} for the action shares, calibration "
                       f"error {prop['ece']:.3f}): {prop['warning']}", err=True)
        truth = rep.get("truth", {})
        for res in rep["results"]:
            known = (f"; TRUE value of following it every period {truth[res['policy']]:.4f} "
                     "per decision"
                     if res["policy"] in truth else "")
            typer.echo(f"\n{res['policy']}  (one-step ESS {res['ess']:,.0f} = "
                       f"{res['ess_ratio']:.1%} of the decisions{known})")
            for r in res["estimates"]:
                typer.echo(f"  {r['estimator']:<10} {r['mean']:10.4f} [{r['low']:10.4f}, "
                           f"{r['high']:10.4f}] per {r['unit']} ({r['kind']})")
            for unit, pick in res.get("choice", {}).items():
                typer.echo(f"  chosen per {unit}: {pick['estimator']} ({pick['reason']})")
            for note in res["warnings"]:
                typer.echo(f"  warning: {note}")
        write_json(tmp / "ope.json", rep)
        plot_ope(rep, tmp / "ope_decision.png", unit="decision")
        if any(e["unit"] == "user" for e in rep["results"][0]["estimates"]):
            plot_ope(rep, tmp / "ope_user.png", unit="user")
    typer.echo(f"wrote {out / 'ope.json'}")


def _chosen_counts(res: dict[str, Any], label: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in res["datasets"]:
        for r in d["policies"]:
            e = r["estimates"][label]["estimator"]
            counts[e] = counts.get(e, 0) + 1
    return counts


@bench_app.command("ope-accuracy")
def bench_ope_accuracy_cmd(
    users: int = typer.Option(10_000, "--users", help="Users per generated dataset."),
    periods: int = typer.Option(52, "--periods", help="Logged periods per dataset."),
    logging: str = typer.Option("campaign", "--logging", help="Logging policy: campaign or "
                                                              "uniform."),
    horizon: int = typer.Option(4, "--horizon", help="Periods evaluated (the log's first H); "
                                                     "the true value is over the same H."),
    repeats: int = typer.Option(5, "--repeats", help="Independent datasets (seeds seed..)."),
    replicates: int = typer.Option(20, "--truth-replicates",
                                   help="Simulated copies of each user for the true value."),
    boot: int = typer.Option(200, "--boot", help="Bootstrap resamples per interval."),
    fqe_steps: int = typer.Option(300, "--fqe-steps", help="Adam steps per FQE iteration."),
    estimator: list[str] = typer.Option(["pdis", "wpdis", "fqe-lin", "mis", "mdr", "dr-lin",
                                         "wdr-lin"], "--estimator",
                                        help="Sequential estimators (repeatable): pdis, wpdis, "
                                             "fqe-lin, mis, mdr, dr-lin, wdr-lin, sim, sim-dr, "
                                             "sim-tdr, "
                                             "and the "
                                             "MLP-based seq-dr, fqe, and the boosted-tree "
                                             "fqe-hgb."),
    with_sim: bool = typer.Option(False, "--with-sim", help="Add sim, sim-dr and sim-tdr: a "
                                  "learned simulator fitted on each dataset (the simulator's "
                                  "value, its doubly robust correction, and that correction "
                                  "truncated where the data say)."),
    sim_family: str = typer.Option("markov", "--sim-family",
                                   help="Predictor family of that simulator."),
    sim_replicates: int = typer.Option(1, "--sim-replicates",
                                       help="Simulator rollouts per logged state and action."),
    sim_calibration: str = typer.Option("none", "--sim-calibration",
                                        help="none, or rollout: the per-period rollout "
                                             "calibration of that simulator's predictor."),
    sim_members: int = typer.Option(0, "--sim-members",
                                    help="Extra simulators fitted on random halves of the "
                                         "users: the sim / sim-dr intervals then add the "
                                         "models' spread (0: the simulator held fixed)."),
    choice: bool = typer.Option(True, help="Also score the data-driven choice among the "
                                "estimators (rows chosen, chosen-mse)."),
    policy: list[str] = typer.Option([], "--policy",
                                     help="Extra target policy: rule:NAME[:...] or a "
                                          "train-policy run folder trained with --env world "
                                          "(repeatable; added to the default rules)."),
    seed: int = typer.Option(0, help="Base seed of the datasets, truth, folds and bootstrap."),
    world: str = typer.Option("default", "--world",
                              help="World of the generated shop: a preset (default, null, "
                                   "inert, tired) or a .json/.yaml world file. inert: actions "
                                   "have no effect and sends are free, so the gate should "
                                   "recommend nothing (this bench called it null before; null "
                                   "is now the preset of that name, where sends lift visits)."),
    gate_baseline: str = typer.Option("rule:campaign", "--gate-baseline",
                                      help="Score the selection gate against this policy "
                                           "('' = no gate)."),
    q_shrinkage: float = typer.Option(1.0, "--q-shrinkage",
                                      help="fqe-lin / mis / mdr / dr-lin / wdr-lin: penalty "
                                           "(rows) pulling each action's linear Q toward the "
                                           "pooled one."),
    ridge: float = typer.Option(1.0, "--ridge", help="Their ridge penalty (rows) of the pooled "
                                "Q and the state-ratio regressions."),
    time_only: bool = typer.Option(False, "--time", help="Only time the estimators (with "
                                   "their bootstrap) on one generated dataset; no truth."),
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """Sequential OPE estimators against the TRUE value on generated shop logs."""
    if out is not None:
        check_out_folder(out)
    from agents.ope.accuracy import DEFAULT_POLICIES, AccuracyConfig, run_ope_accuracy

    ests_in = list(dict.fromkeys(estimator + (["sim", "sim-dr", "sim-tdr"] if with_sim else [])))
    cfg = AccuracyConfig(n_users=users, n_periods=periods, logging=logging, horizon=horizon,
                         repeats=repeats, truth_replicates=replicates, n_boot=boot,
                         estimators=tuple(ests_in), fqe_steps=fqe_steps, seed=seed,
                         world=world, gate_baseline=gate_baseline or None,
                         sim_family=sim_family, sim_replicates=sim_replicates,
                         sim_calibration=sim_calibration, sim_members=sim_members,
                         choice=choice, q_shrinkage=q_shrinkage, ridge=ridge)
    policies = list(DEFAULT_POLICIES) + [p for p in policy if p not in DEFAULT_POLICIES]
    if time_only:
        from agents.ope.accuracy import time_estimators

        res = time_estimators(cfg, policies)
        typer.echo(f"{res['n_users']:,} users x {horizon} periods, {len(policies)} policies, "
                   f"{boot} bootstrap resamples (data generated in {res['data_seconds']:.0f} s)")
        for name, sec in res["seconds"].items():
            typer.echo(f"  {name:<36} {sec:8.1f} s")
        typer.echo(f"  {'total':<36} {res['total_seconds']:8.1f} s (wall clock; the joint "
                   f"marginal estimators used {res['marginal_cpu_seconds']:.1f} s of CPU)")
        _write(out, "bench ope-accuracy --time", {"users": users, "periods": periods,
                                                  "horizon": horizon, "boot": boot,
                                                  "estimator": estimator}, seed, res)
        return
    typer.echo(f"{repeats} datasets of {users:,} users x {periods} periods, {logging} logging; "
               f"value = sum of reward (revenue - send cost - redeemed discount) per user over "
               f"the first {horizon} periods, users outside the control group; "
               f"{len(policies)} policies; truth from {replicates} simulated copies per user; "
               f"{boot} bootstrap resamples, 95% intervals")
    res = run_ope_accuracy(cfg, policies)
    for d in res["datasets"]:
        rc, pc = d["reward_check"], d["panel_net_reward_check"]
        worst = max(rc["by_action"].items(), key=lambda kv: abs(kv[1]["z"]))
        pworst = max(pc["by_action"].items(), key=lambda kv: abs(kv[1]["z"]))
        typer.echo(f"dataset {d['repeat']} (seed {d['seed']}): {d['n_users']:,} users, "
                   f"{d['seconds']:.0f} s; reward - true E[reward]: {rc['mean_diff']:+.4f} "
                   f"(z {rc['z']:+.1f}; worst action {worst[0]} z {worst[1]['z']:+.1f}); "
                   f"panel net reward: {pc['mean_diff']:+.4f} (z {pc['z']:+.1f}; "
                   f"{pworst[0]} z {pworst[1]['z']:+.1f}); obs check max|diff| "
                   f"{d['obs_check_max_abs_diff']:.1e}")
    from agents.ope.accuracy import scored_estimators

    ests = scored_estimators(cfg)
    typer.echo(f"\n{'estimator':<10} {'med.rel.err':>11} {'spearman':>9} {'(min)':>6} "
               f"{'coverage':>9} {'CI width':>9} {'seconds':>8}  goal (<=5%, >=0.9, >=90%)")
    for s in res["summary"]:
        rho = "nan" if s["spearman_mean"] is None else f"{s['spearman_mean']:.3f}"
        lo = "nan" if s["spearman_min"] is None else f"{s['spearman_min']:.2f}"
        typer.echo(f"{s['estimator']:<10} {s['median_rel_error']:11.1%} {rho:>9} {lo:>6} "
                   f"{s['coverage']:9.0%} {s['mean_ci_width']:9.3f} {s['seconds']:8.0f}  "
                   f"{'met' if s['meets_goal'] else 'missed'}")
    typer.echo("\nper policy (mean over datasets): true value (max MC s.e.), each estimator's "
               "mean estimate / median rel. error / coverage")
    typer.echo(f"{'policy':<24} {'truth':>7} {'(se)':>6} "
               + " ".join(f"{e:>22}" for e in ests))
    for p in res["per_policy"]:
        cells = [f"{v['mean_estimate']:7.3f} {v['median_rel_error']:6.1%} {v['coverage']:5.0%}"
                 for v in (p["estimators"][e] for e in ests)]
        typer.echo(f"{p['policy'][:24]:<24} {p['true_value_mean']:7.3f} "
                   f"{p['true_se_max']:6.3f} " + " ".join(f"{c:>22}" for c in cells))
    if "chosen" in ests:
        typer.echo("\nchosen estimator per (dataset, policy): "
                   + "; ".join(f"{label}: " + ", ".join(
                       f"{k} {v}" for k, v in sorted(_chosen_counts(res, label).items()))
                       for label in ("chosen", "chosen-mse")))
    if res["gate"]:
        typer.echo(f"\nselection gate vs {gate_baseline} (one candidate at a time, one-sided "
                   f"{1 - cfg.alpha:.0%} paired lower bound > 0; {world} world): type I = share "
                   "of (dataset, candidate) pairs with TRUE gain <= 0 recommended; power = "
                   "share with TRUE gain >= 5% recommended")
        typer.echo(f"{'estimator':<8} {'type I':>12} {'power':>12} {'datasets w/ any rec.':>22}"
                   f" {'(Bonferroni, as select)':>24}")
        for g in res["gate"]:
            typer.echo(f"{g['estimator']:<8} {g['type_i']:6.1%} ({g['null_pairs']:>3}) "
                       f"{g['power']:6.1%} ({g['power_pairs']:>3}) "
                       f"{g['any_recommendation']:14.0%} of {g['datasets']} "
                       f"{g['any_recommendation_bonferroni']:18.0%} of {g['datasets']}")
    typer.echo(f"largest MC s.e. of a true value: {res['truth_rel_se_max']:.2%} of it; "
               f"total {res['seconds']:.0f} s")
    _write(out, "bench ope-accuracy", {"users": users, "periods": periods, "logging": logging,
                                       "horizon": horizon, "repeats": repeats,
                                       "truth_replicates": replicates, "boot": boot,
                                       "fqe_steps": fqe_steps, "estimator": estimator,
                                       "policy": policy, "world": world,
                                       "gate_baseline": gate_baseline, "with_sim": with_sim,
                                       "sim_family": sim_family,
                                       "sim_replicates": sim_replicates,
                                       "sim_calibration": sim_calibration,
                                       "sim_members": sim_members, "choice": choice,
                                       "q_shrinkage": q_shrinkage, "ridge": ridge},
           seed, res)
