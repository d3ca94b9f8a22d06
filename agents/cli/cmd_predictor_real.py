"""``nudgegym bench predictor-real``: behavior predictors checked on the public real data sets."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import typer

from agents.cli._app import bench_app, output_folder
from predictors.io import check_out_folder, write_json, write_run_config

# torch loads only when the command runs (the CLI must start without it).
#: Part name -> (importer kind, source file under --data).
SOURCES = {
    "hillstrom": ("hillstrom", "hillstrom/hillstrom.csv"),
    "online-retail": ("online-retail", "online_retail/online_retail.csv.gz"),
    "taobao": ("taobao", "taobao_userbehavior/taobao_userbehavior_sample.csv"),
}
_EMAIL_LABEL = {"mens_email": "Mens", "womens_email": "Womens"}


def _fmt(x: float, spec: str) -> str:
    return "nan" if x != x else format(x, spec)


def _print_hillstrom(rep: dict[str, Any]) -> None:
    m = rep["measured"]
    typer.echo(f"\nHillstrom: predicted average effect (test half, {rep['n_test']} customers) vs "
               "the randomized difference of arm means [95% CI]")
    for e, lab in _EMAIL_LABEL.items():
        typer.echo(f"  {lab} e-mail vs none: measured visit {m[e]['visit']['mean']:+.4f} "
                   f"[{m[e]['visit']['low']:+.4f}, {m[e]['visit']['high']:+.4f}]  conversion "
                   f"{m[e]['conversion']['mean']:+.4f} [{m[e]['conversion']['low']:+.4f}, "
                   f"{m[e]['conversion']['high']:+.4f}]  spend {m[e]['spend']['mean']:+.3f} "
                   f"[{m[e]['spend']['low']:+.3f}, {m[e]['spend']['high']:+.3f}]")
    head = "".join(f" {lab[0]}:{o[:5]:<8}" for lab in _EMAIL_LABEL.values()
                   for o in ("visit", "conv", "spend"))
    typer.echo(f"  {'family':<12}{head} inside  qini M  qini W  epochs")
    for fam, r in rep["families"].items():
        cells = ""
        for e in _EMAIL_LABEL:
            for o, spec in (("visit", "+.4f"), ("conversion", "+.4f"), ("spend", "+.3f")):
                c = r["effects"][e][o]
                cells += f" {format(c['predicted'], spec):>7}{'*' if c['inside'] else ' '}"
        typer.echo(f"  {fam:<12}{cells} {r['n_inside']:>4}/6 "
                   f"{_fmt(r['qini']['mens_email'], '+.4f'):>7} "
                   f"{_fmt(r['qini']['womens_email'], '+.4f'):>7}  "
                   f"{r['best_epoch']}/{r['epochs_run']}")
    q = rep["two_model_logistic"]["qini"]
    typer.echo(f"  {'2-model LR':<12}{'':>{len(head)}}  {'':>6} {_fmt(q['mens_email'], '+.4f'):>7} "
               f"{_fmt(q['womens_email'], '+.4f'):>7}")
    typer.echo("  (* = inside the measured 95% CI; Qini of the visit-uplift ranking, normalised: "
               "0 random, 1 perfect)")


def _ci(r: dict[str, float], key: str, spec: str = "+.4f") -> str:
    return (f"{_fmt(r[key], spec)} [{_fmt(r[key + '_low'], spec)}, "
            f"{_fmt(r[key + '_high'], spec)}]")


def _print_uplift(rep: dict[str, Any]) -> None:
    up = rep["uplift"]
    fams = list(rep["families"])
    typer.echo(f"\nHillstrom, who responds: ranking customers by predicted effect (test half; "
               f"95% intervals from {up['n_boot']} bootstrap resamples of its customers)")
    for e, lab in _EMAIL_LABEL.items():
        for o, task in up["tasks"][e].items():
            best = task["best_baseline"]
            typer.echo(f"  {lab} e-mail, {o} (best baseline: {best})")
            typer.echo(f"    {'model':<13}{'Qini [95% CI]':<28}{'AUUC [95% CI]':<28}"
                       f"{'Qini minus ' + best + ' [paired 95% CI]':<41}beats")
            for m in fams + up["baselines"]:
                sc = task["scores"][m]
                line = f"    {m:<13}{_ci(sc, 'qini'):<28}{_ci(sc, 'auuc'):<28}"
                if m in task["vs_best"]:
                    line += (f"{_ci(task['vs_best'][m], 'qini'):<41}"
                             f"{'yes' if task['beats'][m] else 'no'}")
                typer.echo(line)
    tasks = [(e, o) for e in _EMAIL_LABEL for o in up["tasks"][e]]
    won = {f: sum(up["tasks"][e][o]["beats"][f] for e, o in tasks) for f in fams}
    typer.echo("  beats the best baseline (paired CI above 0): "
               + ", ".join(f"{f} {won[f]}/{len(tasks)}" for f in fams))
    heads = [f"{_EMAIL_LABEL[e][0]}:{o[:5]}" for e, o in tasks]
    typer.echo("\n  Effect by customer group: of the pairs of groups (per attribute: "
               + ", ".join(next(iter(up["groups"][tasks[0][0]].values())).keys()) + ")")
    typer.echo("  whose measured effects differ (95% CI of the difference excludes 0), how many "
               "each model orders the same way")
    for i, (hit, of) in enumerate((("n_agree", "n_significant"),
                                   ("n_sign_agree", "n_signed_groups"))):
        if i:
            typer.echo("  and of the groups whose measured effect excludes 0, how many each "
                       "model gives that sign")
        typer.echo(f"    {'model':<13}" + "".join(f"{h:>10}" for h in heads))
        for m in fams + up["baselines"]:
            cells = "".join(f"{a[hit]:>6}/{a[of]:<3}" for a in
                            (up["agreement"][e][o][m] for e, o in tasks))
            typer.echo(f"    {m:<13}{cells}")


def _print_next(name: str, rep: dict[str, Any]) -> None:
    prices = rep["has_prices"]
    typer.echo(f"\n{name}: next-period purchase on test users' later periods "
               f"({rep['n_users']['test']} users, {rep['n_rows']} user-periods)")
    extra = f" {'rev NLL':>8} {'MAE log':>8} {'E[rev] MAE':>10}" if prices else ""
    typer.echo(f"  {'family':<12} {'AUC':>7} {'logloss':>8} {'AUC all':>8} {'visitAUC':>8}"
               f"{extra}  epochs  {'AUC - logistic [95% user bootstrap]'}")
    rows = [("constant", rep["constant"])] + list(rep["families"].items())
    for fam, r in rows:
        line = (f"  {fam:<12} {_fmt(r['purchase_auc'], '.4f'):>7} "
                f"{_fmt(r['purchase_log_loss'], '.4f'):>8} "
                f"{_fmt(r.get('purchase_auc_all_rows', float('nan')), '.4f'):>8} "
                f"{_fmt(r.get('visit_auc', float('nan')), '.4f'):>8}")
        if prices:
            line += (f" {_fmt(r['revenue_nll'], '.4f'):>8} {_fmt(r['revenue_mae_log'], '.4f'):>8}"
                     f" {_fmt(r['expected_revenue_mae'], '.2f'):>10}")
        if "best_epoch" in r:
            line += f"  {r['best_epoch']:>2}/{r['epochs_run']:<3}"
        if "auc_minus_logistic" in r:
            d = r["auc_minus_logistic"]
            line += (f"  {_fmt(d['mean'], '+.4f')} [{_fmt(d['low'], '+.4f')}, "
                     f"{_fmt(d['high'], '+.4f')}]")
        typer.echo(line)


@bench_app.command("predictor-real")
def bench_predictor_real(
    data: Path = typer.Option(..., "--data", help="Folder holding the public data sets: "
                              + ", ".join(src for _, src in SOURCES.values()) + "."),
    parts: str = typer.Option(",".join(SOURCES), help="Comma-separated: "
                              + ", ".join(SOURCES) + "."),
    families: str = typer.Option("", help="Comma-separated families (default: all known)."),
    epochs: int = typer.Option(12, help="Maximum epochs per family (early stopping)."),
    patience: int = typer.Option(3, help="Early-stopping patience."),
    hidden: int = typer.Option(64, help="Hidden width of every family."),
    batch_users: int = typer.Option(32, help="Users per minibatch (all their periods)."),
    seed: int = typer.Option(0, help="Seed of the user splits, weights and minibatches."),
    device: str = typer.Option("cpu", help="cpu, auto or cuda[:N]."),
    threads: int = typer.Option(2, help="Torch intra-op threads while fitting (0: torch's "
                                "default); the fitted models do not depend on it."),
    n_boot: int = typer.Option(200, help="Hillstrom: bootstrap resamples of the test half for "
                               "the uplift intervals (-1: no uplift report)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    out: Path | None = typer.Option(None, "--out", help="Write DIR/bench.json."),
) -> None:
    """Hillstrom effects vs the randomized truth, and who responds (Qini / AUUC vs meta-learner
    baselines, effect by customer group); Online Retail / Taobao next-period purchase."""
    if out is not None:
        check_out_folder(out)
    from predictors.importers import IMPORTERS
    from predictors.models import FAMILIES
    from predictors.models.realdata import RealDataConfig, hillstrom_check, next_period_check

    chosen = [p.strip() for p in parts.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in SOURCES]
    if unknown or not chosen:
        raise ValueError(f"`--parts` must name some of {list(SOURCES)}; got {parts!r}")
    fams = tuple(f.strip() for f in families.split(",") if f.strip()) or tuple(FAMILIES)
    cfg = RealDataConfig(families=fams, epochs=epochs, patience=patience, hidden=hidden,
                         batch_users=batch_users, seed=seed, device=device,
                         num_threads=threads, n_boot=n_boot)
    for p in chosen:
        src = data / SOURCES[p][1]
        if not src.is_file():
            raise FileNotFoundError(f"{src}: missing (needed by part {p!r})")
    results: dict[str, Any] = {"config": cfg.to_dict()}
    with tempfile.TemporaryDirectory(prefix="nudgegym-real-") as tmp:
        for p in chosen:
            kind, rel = SOURCES[p]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # importer/panel notes are in import.json
                folder = IMPORTERS[kind](data / rel, Path(tmp) / p)
                if p == "hillstrom":
                    results[p] = hillstrom_check(folder, cfg, progress=progress)
                else:
                    results[p] = next_period_check(folder, cfg, progress=progress)
    typer.echo(f"families {', '.join(fams)}; epochs <= {epochs} (patience {patience}), hidden "
               f"{hidden}, {batch_users} users per minibatch, seed {seed}, {device}, "
               f"{threads} torch thread(s)")
    for p in chosen:
        if p == "hillstrom":
            _print_hillstrom(results[p])
            if "uplift" in results[p]:
                _print_uplift(results[p])
        else:
            _print_next({"online-retail": "Online Retail (weekly)",
                         "taobao": "Taobao (daily)"}[p], results[p])
    if out is not None:
        with output_folder(out) as tmp:
            write_run_config(tmp, "bench predictor-real", {"data": str(data),
                                                           "parts": chosen, **cfg.to_dict()},
                             seed=seed)
            write_json(tmp / "bench.json", results)
        typer.echo(f"wrote {out / 'bench.json'}")
