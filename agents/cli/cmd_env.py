"""``nudgegym bench env``: learned-shop throughput, batched vs naive, per predictor family."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from agents.cli._app import app, bench_app, output_folder
from predictors.fingerprint import check_pair
from predictors.io import check_out_folder, write_json, write_run_config


def _set_threads(n: int) -> None:
    """Torch intra-op threads of this process (entry points only; 0 leaves torch's default).

    The simulator's per-step tensors are small: one thread avoids the contention measured with
    two threads on a busy 2-core machine (a GRU step 12x slower)."""
    if n > 0:
        import torch

        torch.set_num_threads(n)


@bench_app.command("env")
def bench_env_cmd(
    data: Path | None = typer.Option(None, help="Dataset folder; default: a generated shop."),
    families: str = typer.Option("logistic,mlp,gru,lstm,transformer,markov",
                                 help="Comma-separated predictor families."),
    n_envs: str = typer.Option("64,1024,4096,16384", help="Comma-separated batch sizes."),
    naive: bool = typer.Option(True, help="Also time the naive path (ShopEnv in DummyVecEnv)."),
    min_seconds: float = typer.Option(1.0, help="Minimum timing window per measurement."),
    device: str = typer.Option("cpu", help="Device of the predictor's forward passes."),
    threads: int = typer.Option(1, help="Torch intra-op threads (0: torch's default)."),
    ensemble: int = typer.Option(1, help="Members of a predictor ensemble (1: one predictor)."),
    seed: int = typer.Option(0, help="Seed."),
    out: Path | None = typer.Option(None, "--out", help="Write bench.json here."),
) -> None:
    """User-steps per second of the batched VecEnv, the naive path and the bare forward pass.

    Each family is fitted for one epoch (throughput does not depend on fit quality). With
    ``--ensemble K`` the single model (member 0) is timed right after the ensemble on the same
    shop, and the ratio printed, so a busy machine slows both alike.
    """
    if out is not None:
        check_out_folder(out)
    from envs.bench import bench_env
    from envs.shop_env import load_learned_shop
    from predictors import build_panel, load_users, open_dataset
    from predictors.models import BehaviorPredictor, PredictorConfig, PredictorEnsemble

    _set_threads(threads)
    fams = [f.strip() for f in families.split(",") if f.strip()]
    sizes = [int(s) for s in n_envs.split(",") if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            from predictors.synthetic.generate import GenerateConfig, generate

            data = generate(GenerateConfig(n_users=2000, n_periods=16, seed=seed),
                            Path(tmp) / "shop")
        ds = open_dataset(data)
        panel = build_panel(ds)
        users = load_users(ds)
        rows = []
        header = (f"{'family':<12}{'N':>7}{'batched/s':>12}{'naive/s':>10}{'ratio':>7}"
                  f"{'forward/s':>12}")
        if ensemble > 1:  # the single model (member 0) timed right after, on the same shop
            header += f"{'single/s':>12}{'ens/single':>11}"
        typer.echo(header)
        for fam in fams:
            preds = [BehaviorPredictor(PredictorConfig(family=fam, epochs=1, device=device,
                                                       seed=seed, member=m)).fit(
                panel, ds.spec.action_names, users=users, progress=False)
                for m in range(max(1, ensemble))]
            pred = preds[0] if ensemble <= 1 else PredictorEnsemble(preds, seed=seed)
            shop = load_learned_shop(pred, data, start_users="all", panel=panel)
            single = (load_learned_shop(preds[0], data, start_users="all", panel=panel)
                      if ensemble > 1 else None)
            for n in sizes:
                r = bench_env(shop, n, naive=naive, min_seconds=min_seconds, seed=seed)
                r["family"], r["ensemble"] = fam, max(1, ensemble)
                nv = f"{r['naive']:>10,.0f}{r['speedup']:>7.0f}" if naive else f"{'-':>10}{'-':>7}"
                line = f"{fam:<12}{n:>7}{r['batched']:>12,.0f}{nv}{r['forward']:>12,.0f}"
                if single is not None:
                    one = bench_env(single, n, naive=False, min_seconds=min_seconds, seed=seed)
                    r["single_batched"] = one["batched"]
                    r["ensemble_ratio"] = r["batched"] / one["batched"]
                    line += f"{one['batched']:>12,.0f}{r['ensemble_ratio']:>11.2f}"
                rows.append(r)
                typer.echo(line)
    if out is not None:
        with output_folder(out) as tmp:
            write_run_config(tmp, "bench env", {"data": str(data) if data else None,
                                                "families": fams, "n_envs": sizes,
                                                "naive": naive, "device": device,
                                                "threads": threads,
                                                "ensemble": ensemble}, seed)
            write_json(tmp / "bench.json", {"unit": "user-steps per second", "rows": rows})


def _pct(rel: float | None) -> str:
    """A relative error as ``+1.2%``, or ``-`` where the log's rate is 0 (not informed)."""
    return "-" if rel is None else f"{rel:+.1%}"


@app.command("fidelity")
def fidelity_cmd(
    predictor: Path = typer.Option(..., "--predictor", help="Run folder of train-predictor."),
    data: Path = typer.Option(..., "--data", help="Dataset folder."),
    out: Path = typer.Option(..., "--out", help="Run folder to write."),
    horizon: int = typer.Option(26, help="Periods replayed (and of policy rollouts)."),
    replicates: int = typer.Option(4, help="Simulated copies of each held-out user."),
    policy_replicates: int = typer.Option(2, help="Copies of each user per rule policy."),
    start_users: str = typer.Option("test", help="test, val, train or all."),
    threads: int = typer.Option(1, help="Torch intra-op threads (0: torch's default)."),
    seed: int = typer.Option(0, help="Seed."),
    policy: list[str] = typer.Option([], "--policy", help="Also rank this policy with the rules "
                                     "(a tune-rule run folder or rule:NAME; repeatable)."),
    action_effects: bool = typer.Option(
        True, "--action-effects/--no-action-effects",
        help="Per-action K-step effect check from logged propensities (skipped, with a "
             "note, on a log without propensities)."),
    action_horizons: str = typer.Option("1,4,8", help="Horizons K of the per-action check."),
    action_users: str | None = typer.Option(
        None, help="Start users of the per-action check (default: --start-users; 'all' "
                   "trades held-out users for a less noisy log side)."),
) -> None:
    """How far the learned shop is from the logs (and, on a synthetic shop, from the world)."""
    from agents.cli._action_effects import action_effects_section, parse_horizons

    horizons = parse_horizons(action_horizons) if action_effects else ()
    _set_threads(threads)
    from agents.fidelity import plot_replay, policy_fidelity
    from agents.fidelity_gate import fidelity_gate, fidelity_markdown, plot_rules
    from envs.fidelity import replay_fidelity
    from envs.shop_env import load_learned_shop
    from predictors import build_panel, open_dataset

    check_pair(predictor, data)
    with output_folder(out) as tmp:
        ds = open_dataset(data)
        panel = build_panel(ds)
        last = int(panel["period"].max())
        h = min(horizon, last)
        shop = load_learned_shop(predictor, data, start_period=last + 1 - h,
                                 start_users=start_users, panel=panel)
        rep = replay_fidelity(shop, panel, h, replicates=replicates, seed=seed)
        result = {"replay": rep}
        typer.echo(f"replay of the logged actions: {rep['users']} {start_users} users from period "
                   f"{rep['start_period']}, {h} periods, {replicates} replicates")
        typer.echo(f"  {'metric':<26}{'simulated':>12}{'logged':>12}{'rel. error':>12}"
                   f"{'log rel. SE':>12}")
        for k, v in rep["summary"].items():
            se = "-" if v.get("log_rel_se") is None else f"{v['log_rel_se']:.1%}"
            typer.echo(f"  {k:<26}{v['sim']:>12.4f}{v['log']:>12.4f}{_pct(v['rel_error']):>12}"
                       f"{se:>12}")
        for line in rep["not_informed"]:
            typer.echo(f"  not informed by the data: {line}")
        pp = rep["purchases_per_user"]
        typer.echo(f"  purchases per user: mean sim {pp['mean_sim']:.3f} log {pp['mean_log']:.3f}, "
                   f"Wasserstein {pp['wasserstein']:.3f}, TV {pp['total_variation']:.3f}")
        worst = rep["max_period_rel_error"]
        typer.echo("  worst single period |rel. error|: " + ", ".join(
            f"{k} {'-' if v is None else f'{v:.1%}'}" for k, v in worst.items())
            + " (the log's own per-period relative SE: " + ", ".join(
                f"{v:.1%}" for v in rep["period_rel_se_log"].values()) + ")")
        for g in ("not_contacted", "contacted"):
            if g in rep["by_action"]:
                sm = rep["by_action"][g]["summary"]
                typer.echo(f"  {g:<14} " + "  ".join(
                    f"{name} {_pct(sm[k]['rel_error'])}" for name, k in (
                        ("visit", "visit_rate"), ("purchase", "purchase_rate"),
                        ("revenue", "revenue_per_user"))))
        if ds.truth_folder is not None:
            pol = policy_fidelity(predictor, data, horizon=horizon, start_users=start_users,
                                  replicates=policy_replicates, seed=seed, panel=panel,
                                  extra=tuple(str(p) for p in policy))
            result["policies"] = pol
            typer.echo(f"rule policies, simulated vs TRUE value per user ({horizon} periods, "
                       f"{pol['users']} users from the end of the log):")
            typer.echo(f"  {'policy':<22}{'simulated':>11}{'true':>11}{'rel. error':>12}"
                       f"{'ratio 95% CI':>18}{'rank sim':>9}{'rank true':>10}")
            for row in pol["rows"]:
                ci = f"{row['ratio_low']:.3f}..{row['ratio_high']:.3f}"
                typer.echo(f"  {row['policy']:<22}{row['sim']:>11.3f}{row['true']:>11.3f}"
                           f"{row['rel_error']:>+12.1%}{ci:>18}{row['rank_sim']:>9}"
                           f"{row['rank_true']:>10}")
            typer.echo(f"  max |relative error| {pol['max_abs_rel_error']:.1%}; ranking "
                       f"{'identical' if pol['ranking_identical'] else 'differs'} "
                       f"(Spearman {pol['spearman']:.3f} over {pol['n_rules']} rules); regret@1 "
                       f"{pol['regret_at_1']:.1%} (sim picks {pol['best_sim']}, best is "
                       f"{pol['best_true']})")
        if action_effects:
            result["action_effects"] = action_effects_section(
                predictor, data, ds, panel, action_users or start_users, horizons, replicates,
                seed)
        gate = fidelity_gate(result)
        result["gate"] = gate
        typer.echo(gate["verdict"])
        write_run_config(tmp, "fidelity", {"predictor": str(predictor), "data": str(data),
                                           "horizon": horizon, "replicates": replicates,
                                           "policy_replicates": policy_replicates,
                                           "start_users": start_users, "threads": threads,
                                           "policies": [str(p) for p in policy],
                                           "action_horizons": list(horizons),
                                           "action_users": action_users or start_users}, seed)
        write_json(tmp / "fidelity.json", result)
        plots = {"replay": plot_replay(rep, tmp / "fidelity_replay.png").name}
        if "policies" in result:
            plots["rules"] = plot_rules(result["policies"], tmp / "fidelity_rules.png").name
        (tmp / "report.md").write_text(fidelity_markdown(result, plots))
    typer.echo(f"wrote {out}")
