"""``nudgegym train-predictor``, ``eval-predictor``, ``predict``, ``bench predictor``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import typer

from agents.cli._app import app, bench_app, output_folder
from predictors.fingerprint import check_pair, dataset_fingerprint
from predictors.io import (
    check_file_writable,
    check_out_folder,
    write_json,
    write_parquet,
    write_run_config,
)

if TYPE_CHECKING:  # torch-free at run time
    from predictors.models import BehaviorPredictor

# torch loads only when a predictor command runs (``nudgegym score`` must not import it).
_FAMILY_NAMES = "logistic, mlp, gru, lstm, transformer, markov"


def _load_data(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, Any]:
    from predictors.dataset import open_dataset
    from predictors.loaders import load_users
    from predictors.panel import build_panel

    ds = open_dataset(folder)
    panel = build_panel(ds)
    users = load_users(ds, validate=False) if ds.users_path is not None else None
    return panel, users, ds


def _test_tensors(pred: BehaviorPredictor, panel: pd.DataFrame, users: pd.DataFrame | None):
    """The test users' tensors when the data is the training data, else every user."""
    data = pred.tensors(panel, users)
    scope = "all users (no split of this data)"
    if pred.split_ is not None:
        split = pred.split_.set_index("user_id")["split"]
        known = pd.Index(data.user_ids).isin(split.index)
        if known.all():
            test = split.reindex(data.user_ids).to_numpy() == "test"
            return data.subset(np.flatnonzero(test)), "test users of the training split"
    return data, scope


def _print_heads(metrics: dict[str, dict[str, float]]) -> None:
    for head, m in metrics.items():
        if head == "revenue":
            typer.echo(f"  {head:<12} nll={m['nll']:.4f}  mae_log={m['mae_log']:.4f}  n={m['n']}")
        else:
            typer.echo(f"  {head:<12} auc={m['auc']:.4f}  log_loss={m['log_loss']:.4f}  "
                       f"ece={m['ece']:.4f}  base={m['base_rate']:.4f}  n={m['n']}")


@app.command("train-predictor")
def train_predictor(
    data: Path = typer.Option(..., "--data", help="Dataset folder."),
    model: str = typer.Option("gru", "--model", help=f"Family: {_FAMILY_NAMES}."),
    out: Path = typer.Option(..., "--out", help="Run folder to write."),
    epochs: int = typer.Option(30, help="Maximum epochs (early stopping on validation)."),
    seed: int = typer.Option(0, help="Seed of the user split, init and minibatch order."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
    ipw: bool = typer.Option(False, "--ipw/--no-ipw", help="Inverse-propensity weighting."),
    dad: int = typer.Option(0, "--dad", help="Data as Demonstrator rounds: continue training "
                            "on the model's own rollouts under the logged actions, labelled "
                            "with the logged outcomes (0: off)."),
    history: int = typer.Option(8, help="Periods of raw history (window families)."),
    hidden: int = typer.Option(64, help="Hidden width."),
    layers: int = typer.Option(1, help="Hidden layers."),
    conditioning: str = typer.Option("heads", help="heads or embedding."),
    batch_size: int = typer.Option(4096, help="Minibatch size in user-periods."),
    lr: float = typer.Option(3e-3, help="Learning rate."),
    patience: int = typer.Option(3, help="Early-stopping patience in epochs."),
    markov_order: int = typer.Option(1, help="markov: periods in the behaviour state."),
    markov_prior: float = typer.Option(0.0, help="markov: prior strength in pseudo "
                                       "user-periods (0: chosen on validation users)."),
    markov_static: bool = typer.Option(True, "--markov-static/--no-markov-static",
                                       help="markov: per-action offsets linear in the static "
                                       "user features (kept per head where they lower the "
                                       "validation loss)."),
    ensemble: int = typer.Option(1, help="Fit K members (same split, other initial weights "
                                 "and minibatch order): the simulator draws one per user-step."),
    calibration: str = typer.Option("none", help="Per-head, per-action calibration fitted on "
                                    "the validation users: none, temperature or isotonic."),
    threads: int = typer.Option(2, help="Torch intra-op threads while fitting (0: torch's "
                                "default); the fitted model does not depend on it."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
) -> None:
    """Train a behavior predictor on a dataset; write weights, metrics.json and plots."""
    from predictors.models import BehaviorPredictor, PredictorConfig, head_metrics, resolve_device
    from predictors.models.metrics import logged_outcomes
    from predictors.models.plots import plot_calibration, plot_loss_curves

    cfg = PredictorConfig(family=model, history=history, hidden=hidden, layers=layers,
                          conditioning=conditioning, epochs=epochs, batch_size=batch_size,
                          lr=lr, patience=patience, ipw=ipw, dad=dad, seed=seed, device=device,
                          num_threads=threads, markov_order=markov_order, markov_prior=markov_prior,
                          markov_static=markov_static)
    resolve_device(device)
    if ensemble < 1:
        raise typer.BadParameter(f"expected an integer >= 1; got {ensemble}",
                                 param_hint="--ensemble")
    with output_folder(out) as tmp:
        panel, users, ds = _load_data(data)
        fingerprint = dataset_fingerprint(data)
        if ensemble > 1:
            _train_ensemble(cfg, ensemble, calibration, panel, users, ds, data, tmp, progress,
                            fingerprint)
            typer.echo(f"wrote {out} ({ensemble} members)")
            return
        t0 = time.perf_counter()
        pred = BehaviorPredictor(cfg).fit(panel, ds.spec.action_names or ["none"], users,
                                          progress=progress)
        if calibration != "none":
            pred.calibrate(panel, users, method=calibration, weighted=ipw)
        fit_s = time.perf_counter() - t0
        pred.to_cpu().save(tmp)
        write_run_config(tmp, "train-predictor", {"data": str(data), "predictor": cfg.to_dict(),
                                                  "dataset_fingerprint": fingerprint}, seed=seed)
        full = pred.tensors(panel, users)
        split = pred.split_.set_index("user_id")["split"].reindex(full.user_ids).to_numpy()
        val = full.subset(np.flatnonzero(split == "val"))
        val_pred = pred.predict_tensors(val)
        val_metrics = head_metrics(val, val_pred)
        res = pred.train_result_
        metrics = {"family": model, "ipw": ipw, "dad": dad, "calibration": calibration,
                   "best_epoch": res.best_epoch,
                   "epochs_run": len(res.history), "fit_seconds": fit_s,
                   "train_rows_per_second": res.rows_per_second,
                   "n_users": {s: int((split == s).sum()) for s in ("train", "val", "test")},
                   "validation": val_metrics, "history": res.history}
        write_json(tmp / "metrics.json", metrics)
        plot_loss_curves(res.history, tmp / "loss_curves.png")
        plot_calibration(logged_outcomes(val, val_pred), tmp / "calibration_val.png")
    typer.echo(f"trained {model} in {fit_s:.1f}s ({res.rows_per_second:,.0f} user-periods/s), "
               f"best epoch {res.best_epoch}/{len(res.history)}; validation:")
    _print_heads(val_metrics)
    typer.echo(f"wrote {out}")


def _train_ensemble(cfg, k: int, calibration: str, panel, users, ds, data: Path, out: Path,
                    progress: bool, fingerprint: dict) -> None:
    """``train-predictor --ensemble K``: K members saved as one ensemble folder."""
    from dataclasses import replace

    from predictors.models import BehaviorPredictor, PredictorEnsemble, head_metrics

    members, rows = [], []
    t0 = time.perf_counter()
    for m in range(k):
        pred = BehaviorPredictor(replace(cfg, member=m)).fit(
            panel, ds.spec.action_names or ["none"], users, progress=progress)
        if calibration != "none":
            pred.calibrate(panel, users, method=calibration, weighted=cfg.ipw)
        full = pred.tensors(panel, users)
        split = pred.split_.set_index("user_id")["split"].reindex(full.user_ids).to_numpy()
        val = full.subset(np.flatnonzero(split == "val"))
        vm = head_metrics(val, pred.predict_tensors(val))
        rows.append({"member": m, "best_epoch": pred.train_result_.best_epoch,
                     "epochs_run": len(pred.train_result_.history), "validation": vm})
        typer.echo(f"member {m}: best epoch {pred.train_result_.best_epoch}; validation AUC "
                   + "  ".join(f"{h}={v['auc']:.4f}" for h, v in vm.items() if "auc" in v))
        members.append(pred.to_cpu())
    PredictorEnsemble(members, seed=cfg.seed).save(out)
    write_run_config(out, "train-predictor", {"data": str(data), "predictor": cfg.to_dict(),
                                              "ensemble": k, "calibration": calibration,
                                              "dataset_fingerprint": fingerprint},
                     seed=cfg.seed)
    write_json(out / "metrics.json", {"family": cfg.family, "ensemble": k,
                                      "calibration": calibration,
                                      "fit_seconds": time.perf_counter() - t0,
                                      "members": rows})


@app.command("eval-predictor")
def eval_predictor(
    predictor: Path = typer.Option(..., "--predictor", help="Run folder of train-predictor."),
    data: Path = typer.Option(..., "--data", help="Dataset folder."),
    out: Path = typer.Option(..., "--out", help="Run folder to write."),
) -> None:
    """Test-split metrics per head, and counterfactual accuracy when the data has truth/."""
    from predictors.models import BehaviorPredictor, counterfactual_report, head_metrics
    from predictors.models.metrics import logged_outcomes
    from predictors.models.plots import plot_calibration

    check_pair(predictor, data)
    with output_folder(out) as tmp:
        pred = BehaviorPredictor.load(predictor, device="cpu")
        panel, users, ds = _load_data(data)
        test, scope = _test_tensors(pred, panel, users)
        out_pred = pred.predict_tensors(test)
        metrics: dict[str, Any] = {"predictor": str(predictor), "family": pred.config.family,
                                   "ipw": pred.config.ipw, "scope": scope,
                                   "n_users": test.n_users, "heads": head_metrics(test, out_pred)}
        typer.echo(f"{pred.config.family}: {scope}, {test.n_users} users, {test.n_rows} rows")
        _print_heads(metrics["heads"])
        truth_path = data / "truth" / "outcomes.parquet"
        if truth_path.is_file():
            keys = test.keys()
            truth = pd.read_parquet(truth_path)
            truth = truth[truth["user_id"].isin(keys["user_id"].unique())]
            cf = counterfactual_report(keys, out_pred, truth)
            metrics["counterfactual"] = cf
            typer.echo(f"  counterfactual over {cf['n_rows']} user-periods x all actions: "
                       + "  ".join(f"MAE {q}={v:.4f}" for q, v in cf["mae"].items()))
            for a, eff in cf["effects"].items():
                typer.echo(f"  effect {a:<10} " + "  ".join(
                    f"{q}: pred {e['predicted']:+.4f} true {e['true']:+.4f} "
                    f"(rel err {e['relative_error']:.1%})"
                    for q, e in eff.items() if q in ("p_purchase", "expected_revenue")))
        write_run_config(tmp, "eval-predictor", {"predictor": str(predictor), "data": str(data)})
        write_json(tmp / "metrics.json", metrics)
        plot_calibration(logged_outcomes(test, out_pred), tmp / "calibration_test.png")
    typer.echo(f"wrote {out}")


@app.command("predict")
def predict(
    predictor: Path = typer.Option(..., "--predictor", help="Run folder of train-predictor."),
    data: Path = typer.Option(..., "--data", help="Dataset folder."),
    out: Path = typer.Option(..., "--out", help="FILE.parquet, or a folder (predictions.parquet)."),
) -> None:
    """Predictions for every user and decision period of a dataset, for every action."""
    from predictors.models import BehaviorPredictor

    check_pair(predictor, data)
    if out.suffix == ".parquet":
        check_file_writable(out)
        path = out
    else:
        path = out / "predictions.parquet"
    options = {"predictor": str(predictor), "data": str(data)}

    def _predict() -> pd.DataFrame:
        pred = BehaviorPredictor.load(predictor, device="cpu")
        panel, users, _ = _load_data(data)
        keys, p = pred.predict(panel, users)
        return pd.concat([keys, p.to_frame()], axis=1)

    if out.suffix == ".parquet":
        frame = _predict()
        write_parquet(path, frame)
        write_json(path.with_suffix(".config.json"),
                   {"command": "predict", "options": {**options, "rows": len(frame)}})
    else:
        with output_folder(out) as tmp:
            frame = _predict()
            write_parquet(tmp / path.name, frame)
            write_run_config(tmp, "predict", {**options, "rows": len(frame)})
    typer.echo(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {path}")


@bench_app.command("predictor")
def bench_predictor(
    families: str = typer.Option(_FAMILY_NAMES.replace(" ", ""),
                                 help="Comma-separated families."),
    users: int = typer.Option(2000, help="Users of the toy panel."),
    periods: int = typer.Option(26, help="Periods of the toy panel."),
    epochs: int = typer.Option(2, help="Training epochs timed."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:N]."),
    step_batch: int = typer.Option(4096, help="Users per carried-state step."),
    panel_kind: str = typer.Option("toy", "--panel", help="toy (per-row simulation, small) or "
                                   "chain (vectorised Markov chain, for millions of rows)."),
    out: Path | None = typer.Option(None, "--out", help="Write DIR/bench.json."),
) -> None:
    """Training and inference throughput per family (user-periods/s)."""
    if out is not None:
        check_out_folder(out)
    from predictors.models import BehaviorPredictor, PredictorConfig, resolve_device, toy_panel
    from predictors.models.chain import chain_panel
    dev = resolve_device(device)
    if panel_kind not in ("toy", "chain"):
        raise ValueError(f"`--panel` must be toy or chain; got {panel_kind!r}")
    make = toy_panel if panel_kind == "toy" else chain_panel
    panel, users_df = make(users, periods, seed=0, lift=(0.0, 0.5, 1.0))
    names = ["none", "a1", "a2"]
    rows = []
    for fam in [f.strip() for f in families.split(",") if f.strip()]:
        cfg = PredictorConfig(family=fam, epochs=epochs, patience=epochs, device=str(dev))
        t0 = time.perf_counter()
        pred = BehaviorPredictor(cfg).fit(panel, names, users_df, progress=False)
        fit_s = time.perf_counter() - t0
        data = pred.tensors(panel, users_df)
        t0 = time.perf_counter()
        pred.predict_tensors(data)
        infer = data.n_rows / (time.perf_counter() - t0)
        rng = np.random.default_rng(0)
        raw = rng.poisson(1.0, (step_batch, 7)).astype(np.float32)
        act = rng.integers(0, len(names), step_batch)
        state = pred.initial_state(step_batch)
        n_steps = 20
        t0 = time.perf_counter()
        for _ in range(n_steps):
            pred.predict_from_state(state)
            state = pred.step(state, raw, act)
        step = n_steps * step_batch / (time.perf_counter() - t0)
        rows.append({"family": fam, "device": str(dev), "fit_seconds": fit_s,
                     "panel_rows": len(panel),
                     "train_user_periods_per_s": pred.train_result_.rows_per_second,
                     "batch_infer_user_periods_per_s": infer,
                     "carried_state_user_steps_per_s": step})
    typer.echo(f"{'family':<12} {'fit s':>8} {'train/s':>12} {'infer/s':>12} {'step/s':>12}  "
               f"({dev}, {panel_kind} panel {users} users x {periods} periods, "
               f"step batch {step_batch})")
    for r in rows:
        typer.echo(f"{r['family']:<12} {r['fit_seconds']:>8.1f} "
                   f"{r['train_user_periods_per_s']:>12,.0f} "
                   f"{r['batch_infer_user_periods_per_s']:>12,.0f} "
                   f"{r['carried_state_user_steps_per_s']:>12,.0f}")
    if out is not None:
        with output_folder(out) as tmp:
            write_run_config(tmp, "bench predictor", {"families": families, "users": users,
                                                      "periods": periods, "epochs": epochs,
                                                      "panel": panel_kind,
                                                      "device": str(dev)})
            write_json(tmp / "bench.json", {"results": rows})
