"""``nudgegym export`` (a trained policy to ONNX/TorchScript) and ``nudgegym score``.

``score`` runs with onnxruntime alone: this module imports nothing of torch or SB3 at import
time, and the export command imports them only when it runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from agents.cli._app import app, output_folder, read_table_file
from predictors.errors import ConfigError
from predictors.io import check_file_writable, write_json, write_parquet, write_run_config


def _run_options(run: Path) -> dict:
    cfg = run / "config.json"
    return json.loads(cfg.read_text()).get("options", {}) if cfg.is_file() else {}


@app.command("export")
def export_cmd(
    policy: Path = typer.Option(..., "--policy", help="Run folder of train-policy."),
    out: Path = typer.Option(..., "--out", help="Export folder to write."),
    fmt: str = typer.Option("onnx", "--format", help="onnx or torchscript."),
    data: Path | None = typer.Option(None, "--data", help="Training dataset (default: the "
                                     "run's own, from its config.json)."),
    epsilon: float | None = typer.Option(None, help="DQN: exploration rate of the exported "
                                         "probabilities (default: the model's final one)."),
    checkpoint: str | None = typer.Option(None, help="Another model file of the run folder."),
    require_selection: Path | None = typer.Option(
        None, "--require-selection", help="selection.json of `nudgegym select`: refuse to "
        "export unless it recommends this --policy."),
) -> None:
    """Export a policy: the model file plus manifest.json (features, actions, versions, sha256)."""
    if require_selection is not None:
        from agents.ope.selection import check_selection

        check_selection(require_selection, policy)
    from agents.export import export_policy
    from agents.sb3_policy import load_sb3_policy
    from predictors import open_dataset

    if fmt not in ("onnx", "torchscript"):
        raise ConfigError(f"--format {fmt}: expected onnx or torchscript")
    if not policy.is_dir():
        raise FileNotFoundError(f"--policy {policy}: no such folder; expected a run folder of "
                                "`nudgegym train-policy`")
    from predictors.io import check_replaceable

    check_replaceable(out)
    pol = load_sb3_policy(policy, device="cpu", checkpoint=checkpoint)
    opts = _run_options(policy)
    data = data or (Path(opts["data"]) if opts.get("data") else None)
    if data is None:
        raise ValueError(f"{policy}: its config.json names no dataset; pass --data")
    spec = open_dataset(data).spec
    names = list(pol.observation_names or [])
    metrics_path = policy / "metrics.json"
    caps = {"used": False}
    if metrics_path.is_file():
        c = json.loads(metrics_path.read_text()).get("config", {})
        if c.get("coupon_gap") or c.get("max_contacts"):
            caps = {"used": True, "coupon_gap": c.get("coupon_gap", 0),
                    "max_contacts": c.get("max_contacts", 0),
                    "contact_window": c.get("contact_window", 4)}
    static_encoder = None
    if any(n.startswith("static:") for n in names):  # how serving builds them from users
        if not opts.get("predictor"):
            raise ConfigError(f"{policy}: the policy reads static features but its "
                              "config.json names no predictor (their encoding)")
        from predictors.models import BehaviorPredictor, PredictorEnsemble, is_ensemble_folder

        pred_dir = Path(opts["predictor"])
        pred = (PredictorEnsemble.load(pred_dir, device="cpu") if is_ensemble_folder(pred_dir)
                else BehaviorPredictor.load(pred_dir, device="cpu"))
        static_encoder = pred.encoder_.to_dict()
    t0 = time.perf_counter()
    with output_folder(out) as tmp:
        export_policy(pol.model, tmp, observation_names=names, spec=spec, fmt=fmt,
                      epsilon=epsilon, masks=caps, data=data, algo=getattr(pol, "algo", None),
                      static_encoder=static_encoder)
        write_run_config(tmp, "export", {"policy": str(policy), "format": fmt,
                                         "data": str(data), "epsilon": epsilon,
                                         "checkpoint": checkpoint,
                                         "require_selection": None if require_selection is None
                                         else str(require_selection)})
        manifest = json.loads((tmp / "manifest.json").read_text())
    typer.echo(f"exported {manifest['algo']} to {out / manifest['model_file']} "
               f"(sha256 {manifest['sha256'][:12]}..., {len(names)} features, "
               f"{spec.n_actions} actions) in {time.perf_counter() - t0:.1f} s")


@app.command("score")
def score_cmd(
    model: Path = typer.Option(..., "--model", help="Export folder (ONNX)."),
    out: Path = typer.Option(..., "--out", help="decisions.parquet to write."),
    input: Optional[Path] = typer.Option(None, "--input", help="Parquet or CSV: one row per "
                                         "user with the manifest's features (and optionally "
                                         "user_id, mask__A), e.g. from `nudgegym features`."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder instead of "
                                        "--input: score every user's state at the end of "
                                        "its log."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="With --data: decision time."),
    mode: str = typer.Option("sample", help="sample (logs propensities for OPE) or greedy."),
    seed: int = typer.Option(0, help="Seed of the sampled decisions."),
) -> None:
    """Batch decisions with onnxruntime alone; each with its probability (the pscore)."""
    from agents.serving import ExportedPolicy, score_table

    if (input is None) == (data is None):
        raise ConfigError("--input / --data: give exactly one of --input FILE or --data DIR")
    if as_of is not None and data is None:
        raise ConfigError("--as-of: needs --data DIR (it picks the periods of the log)")
    if mode not in ("sample", "greedy"):
        raise ConfigError(f"--mode {mode}: expected sample or greedy")
    if not (model / "manifest.json").is_file():
        raise FileNotFoundError(f"--model {model}: not an export folder (no manifest.json); "
                                "expected the --out of `nudgegym export`")
    check_file_writable(out)
    pol = ExportedPolicy(model)
    if data is not None:
        from predictors.current import current_observations

        table, source = current_observations(data, as_of=as_of), str(data)
        if pol.static_encoder is not None:  # the users table's raw columns
            from predictors import load_users, open_dataset

            users = load_users(open_dataset(data), validate=False)
            table = table.merge(users, on="user_id", how="left", suffixes=("", "__users"))
    else:
        table, source = read_table_file(input, "--input"), input.name
    if pol.static_encoder is not None:
        from agents.serving import add_static_features

        table = add_static_features(table, pol.static_encoder, source)
    decisions = score_table(pol, table, mode=mode, seed=seed, source=source)
    write_parquet(out, decisions)
    counts = decisions["action"].value_counts().to_dict()
    write_json(out.with_suffix(".json"), {"model": str(model), "input": str(input or data),
                                          "as_of": as_of, "rows": len(decisions), "mode": mode,
                                          "seed": seed, "actions": counts})
    typer.echo(f"scored {len(decisions):,} rows -> {out}: "
               + ", ".join(f"{a}={n:,}" for a, n in counts.items()))
