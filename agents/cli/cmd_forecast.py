"""``nudgegym forecast`` (every customer rolled forward in the learned shop) and ``nudgegym bench
forecast`` (calibration / holdout on a log, against BG/NBD and Pareto/NBD)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import typer

from agents.cli._app import app, bench_app, output_folder
from predictors.io import check_out_folder, write_json, write_run_config, write_text

#: The Online Retail source file a ``bench forecast --data`` folder may hold instead of a dataset.
ONLINE_RETAIL_FILE = "online_retail.csv.gz"

ESTIMATOR_HELP = ("rao_blackwell: expected purchases and P(any purchase) from the model's "
                  "per-period purchase probabilities (less Monte-Carlo noise, no ties); "
                  "sampled: counts of the drawn purchases.")


ENSEMBLE_HELP = ("With an ensemble run (train-predictor --ensemble K): average, forecast with "
                 "each member and average the forecasts (less variance of one fit); draw, one "
                 "random member per user-step (the learned shop's ensemble).")
ENSEMBLE_MODES = ("average", "draw")


def _set_threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)


@app.command("forecast")
def forecast_cmd(
    predictor: Path = typer.Option(..., "--predictor", help="Run folder of train-predictor."),
    data: Path = typer.Option(..., "--data", help="Dataset folder (the customers' log)."),
    periods: int = typer.Option(..., "--periods", help="Periods to forecast after the log."),
    out: Path = typer.Option(..., "--out", help="Folder to write (customers.csv, curve.csv, "
                             "forecast.json)."),
    policy: str = typer.Option("rule:never", help="Policy applied over the horizon: rule:NAME, "
                               "an export or a train-policy run (default: no contact)."),
    replicates: int = typer.Option(100, help="Simulated copies of each customer."),
    active_window: int = typer.Option(13, help="Periods looked ahead after the horizon for "
                                      "P(still active) (0: leave it out)."),
    start_users: str = typer.Option("all", help="Customers to forecast: all, or the "
                                    "predictor's test, val or train users."),
    alpha: float = typer.Option(0.05, help="1 - level of the intervals."),
    estimator: str = typer.Option("rao_blackwell", help=ESTIMATOR_HELP),
    ensemble: str = typer.Option("average", help=ENSEMBLE_HELP),
    threads: int = typer.Option(1, help="Torch intra-op threads (0: torch's default)."),
    seed: int = typer.Option(0, help="Seed."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
) -> None:
    """Expected purchases, revenue, P(any purchase), P(still active) per customer, with intervals,
    and the base's cumulative per-period purchase curve."""
    from envs.forecast import ForecastConfig
    from predictors.fingerprint import check_pair

    cfg = ForecastConfig(periods=periods, replicates=replicates, active_window=active_window,
                         alpha=alpha, seed=seed, estimator=estimator)
    if ensemble not in ENSEMBLE_MODES:
        raise ValueError(f"--ensemble must be one of {list(ENSEMBLE_MODES)}; got {ensemble!r}")
    check_pair(predictor, data)
    with output_folder(out) as tmp:
        _set_threads(threads)
        fc, summary = _forecast(predictor, data, policy, start_users, cfg, progress, ensemble)
        write_run_config(tmp, "forecast", {"predictor": str(predictor), "data": str(data),
                                           "policy": policy, "start_users": start_users,
                                           "ensemble": ensemble, "threads": threads,
                                           **cfg.to_dict()}, seed)
        write_text(tmp / "customers.csv", fc.customers.to_csv(index=False))
        write_text(tmp / "curve.csv", fc.curve.to_csv(index=False))
        write_json(tmp / "forecast.json", summary)
    t = summary["totals"]["purchases"]
    typer.echo(f"{summary['n_customers']} customers, periods {summary['periods'][0]}.."
               f"{summary['periods'][1]} under {policy}, {replicates} replicates: expected "
               f"purchases {t['expected']:.1f} [{t['ci_low']:.1f}, {t['ci_high']:.1f}], "
               f"mean P(any purchase) {summary['mean_p_any_purchase']:.3f}"
               + (f", mean P(still active) {summary['mean_p_active_end']:.3f}"
                  if "mean_p_active_end" in summary else ""))
    typer.echo(f"wrote {out}")


def _forecast(predictor: Path, data: Path, policy: str, start_users: str, cfg: Any,
              progress: bool = False, ensemble: str = "average") -> Any:
    from agents.loading import load_policy
    from envs.forecast import forecast_customers
    from envs.shop_env import load_learned_shop
    from predictors import build_panel, open_dataset
    from predictors.models import PredictorEnsemble, is_ensemble_folder

    if ensemble == "average" and is_ensemble_folder(predictor):
        panel = build_panel(open_dataset(data))
        shops = [load_learned_shop(m, data, start_users=start_users, panel=panel)
                 for m in PredictorEnsemble.load(predictor).members]
    else:
        shops = [load_learned_shop(predictor, data, start_users=start_users)]
    shop = shops[0]
    pol = load_policy(policy, shop.spec, shop.observation_names, data)
    if policy == "rule:never":
        fn = None  # the none action, open loop: identical to the rule and cheaper
    else:
        def fn(obs, mask, rng, p=pol):
            return p.act(obs, rng, mask)
    fc = forecast_customers(shops, fn, cfg, progress=progress)
    summary = fc.summary | {"policy": policy, "start_users": start_users, "ensemble": ensemble,
                            "columns": list(fc.customers.columns)}
    return fc, summary


def _dataset(data: Path, tmp: str) -> Path:
    """``data`` itself (a dataset folder), or Online Retail imported from ``data``."""
    if (data / "dataset.json").is_file():
        return data
    src = data / ONLINE_RETAIL_FILE
    if not src.is_file():
        raise FileNotFoundError(f"--data {data}: expected a dataset folder (dataset.json) or a "
                                f"folder holding {ONLINE_RETAIL_FILE}")
    from predictors import import_online_retail

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the importer's notes are in its import.json
        return import_online_retail(src, Path(tmp) / "online_retail")


def _print_bench(res: dict[str, Any]) -> None:
    typer.echo(f"calibration periods {res['calibration'][0]}..{res['calibration'][1]}, holdout "
               f"{res['holdout'][0]}..{res['holdout'][1]}; {res['n_customers']} customers with "
               f"a purchase in calibration; actual holdout purchase periods "
               f"{res['actual']['total']:.0f} ({res['actual']['any_purchase_rate']:.1%} buy)")
    typer.echo(f"  {'method':<12}{'RMSE':>8}{'MAE':>8}{'AUC':>8}{'total err':>11}"
               f"{'curve MAPE':>12}{'mean pred':>11}{'fit s':>8}")
    for name, r in res["methods"].items():
        typer.echo(f"  {name:<12}{r['rmse']:>8.4f}{r['mae']:>8.4f}{r['auc']:>8.4f}"
                   f"{r['total_error']:>+11.1%}{r['curve_mape']:>12.1%}"
                   f"{r['mean_expected']:>11.3f}{r['fit_seconds']:>8.0f}")
    typer.echo(f"  {'actual':<12}{'':>46}{res['actual']['total'] / res['n_customers']:>11.3f}")
    for name, p in res["baseline_params"].items():
        typer.echo(f"  {name} parameters: " + ", ".join(f"{k} {v:.4g}" for k, v in p.items()))
    if "vs_bgnbd" in res:
        lvl = f"{1 - res['config']['alpha']:.0%}"
        typer.echo(f"  method - bgnbd, paired customer bootstrap [{lvl}] (* = better than bgnbd):")
        for name, d in res["vs_bgnbd"].items():
            cells = "  ".join(f"{m} {v['mean']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}]"
                              f"{'*' if v['better'] else ' '}" for m, v in d.items())
            typer.echo(f"  {name:<12}{cells}")


@bench_app.command("forecast")
def bench_forecast_cmd(
    data: Path = typer.Option(..., "--data", help=f"A dataset folder, or a folder holding "
                              f"{ONLINE_RETAIL_FILE} (UCI Online Retail, imported here)."),
    calibration_periods: int = typer.Option(39, help="Calibration periods 0..C-1."),
    holdout_periods: int = typer.Option(14, help="Holdout periods C..C+H-1 forecast and "
                                        "scored."),
    families: str = typer.Option("", help="Comma-separated families (default: all known; "
                                 "'none': only the baselines)."),
    baselines: str = typer.Option("bgnbd,pareto_nbd", help="Comma-separated: bgnbd, "
                                  "pareto_nbd ('none': no baseline)."),
    replicates: int = typer.Option(32, help="Simulated copies of each customer per family."),
    epochs: int = typer.Option(12, help="Maximum epochs per family (early stopping)."),
    patience: int = typer.Option(3, help="Early-stopping patience."),
    hidden: int = typer.Option(64, help="Hidden width of every family."),
    batch_users: int = typer.Option(32, help="Users per minibatch (all their periods)."),
    n_boot: int = typer.Option(500, help="Customer bootstrap resamples."),
    estimator: str = typer.Option("rao_blackwell", help=ESTIMATOR_HELP),
    members: int = typer.Option(1, help="Fits per family (seeds differ) whose forecasts are "
                                "averaged; each fit also gets its own row FAMILY#k."),
    threads: int = typer.Option(1, help="Torch intra-op threads (0: torch's default)."),
    seed: int = typer.Option(0, help="Seed."),
    device: str = typer.Option("cpu", help="cpu, auto or cuda[:N]."),
    progress: bool = typer.Option(False, "--progress/--no-progress", help="Progress bars."),
    out: Path | None = typer.Option(None, "--out", help="Write DIR/bench.json."),
) -> None:
    """Calibrate on the earlier periods, forecast the later ones: every family vs BG/NBD and
    Pareto/NBD (per-customer RMSE, MAE, AUC of any purchase, total error, tracking MAPE)."""
    if out is not None:
        check_out_folder(out)
    from envs.forecast_bench import ForecastBenchConfig, forecast_bench
    from predictors.models import FAMILIES

    def names(text: str, default: tuple[str, ...]) -> tuple[str, ...]:
        if text.strip() == "none":
            return ()
        return tuple(f.strip() for f in text.split(",") if f.strip()) or default

    cfg = ForecastBenchConfig(
        calibration_periods=calibration_periods, holdout_periods=holdout_periods,
        families=names(families, FAMILIES), baselines=names(baselines, ()),
        replicates=replicates, epochs=epochs, patience=patience, hidden=hidden,
        batch_users=batch_users, seed=seed, n_boot=n_boot, device=device,
        estimator=estimator, members=members)
    _set_threads(threads)
    with tempfile.TemporaryDirectory(prefix="nudgegym-bench-forecast-") as tmp:
        folder = _dataset(data, tmp)
        res = forecast_bench(folder, cfg, progress=progress,
                             log=lambda m: typer.echo(m, err=True))
    _print_bench(res)
    if out is not None:
        with output_folder(out) as tmp_out:
            write_run_config(tmp_out, "bench forecast", {"data": str(data), "threads": threads,
                                                         **cfg.to_dict()}, seed=seed)
            write_json(tmp_out / "bench.json", res)
        typer.echo(f"wrote {out / 'bench.json'}")
