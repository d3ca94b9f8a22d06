"""Sweep jobs: one (config, seed) each, a pure function of its inputs, in a hashed run folder.

A job's key is the sha256 of the canonical JSON of its config, seed, evaluation settings, the
shop's fingerprint (the dataset files' sha256 and the predictor's, or the settings of the
predictor it trains) and the package version; its run folder is ``OUT/jobs/KEY[:16]``. A job
trains (:func:`agents.train.train_policy`, folder ``train/``), then evaluates the trained policy
beside the sweep's rules (:func:`agents.evaluate.evaluate_policies`, folder ``eval/``) from the
same start users with the same common random numbers as every other job, and writes
``result.json`` last (with the job's warnings, kept out of the sweep's output): a folder with
``result.json`` is finished and skipped on resume. A job that raises writes ``error.json`` (the
error and its traceback) and returns its failure; it is tried again on the next run.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from predictors.io import write_json, write_text

__all__ = ["Job", "PredictorJob", "job_key", "run_job", "run_predictor_job"]


def job_key(payload: dict[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of ``payload``."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _files_sha256(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    from agents.export import file_sha256

    return {n: file_sha256(folder / n) for n in names if (folder / n).is_file()}


def predictor_fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of a predictor run's model files."""
    return _files_sha256(folder, ("predictor.json", "weights.pt", "split.parquet"))


@dataclass(frozen=True)
class PredictorJob:
    """Train one behavior predictor for the sweep (when the shop names a family)."""

    key: str
    family: str
    epochs: int
    seed: int
    data: str
    folder: str


@dataclass(frozen=True)
class Job:
    """One training + evaluation run.

    Attributes:
        key: Hash of the job's inputs (see the module docstring).
        config_id: Hash of the config alone (the same for every seed of a config).
        options: The config: TrainConfig options, hyperparameters, ``family``.
        seed: Training seed.
        data, predictor: Dataset folder and predictor run folder.
        folder: Run folder.
        train: TrainConfig keywords (``env`` already ``learned`` / ``world``).
        hyperparams: Hyperparameter overrides of the algorithm's YAML.
        evaluation: EvaluateConfig keywords and ``rules``.
    """

    key: str
    config_id: str
    options: dict[str, Any]
    seed: int
    data: str
    predictor: str
    folder: str
    train: dict[str, Any]
    hyperparams: dict[str, Any]
    evaluation: dict[str, Any]

    @property
    def done(self) -> bool:
        """Whether ``result.json`` exists (finished, skipped on resume)."""
        return (Path(self.folder) / "result.json").is_file()


def run_predictor_job(job: PredictorJob) -> dict[str, Any]:
    """Train and save a predictor into ``job.folder``; idempotent."""
    folder = Path(job.folder)
    if (folder / "predictor.json").is_file():
        return {"key": job.key, "status": "done", "folder": job.folder}
    from predictors import build_panel, load_users, open_dataset
    from predictors.models import BehaviorPredictor, PredictorConfig

    ds = open_dataset(job.data)
    pred = BehaviorPredictor(PredictorConfig(family=job.family, epochs=job.epochs,
                                             device="cpu", seed=job.seed))
    pred.fit(build_panel(ds), ds.spec.action_names, users=load_users(ds), progress=False)
    pred.save(folder)
    write_json(folder / "sweep_predictor.json", asdict(job))
    return {"key": job.key, "status": "done", "folder": job.folder}


def run_job(job: Job) -> dict[str, Any]:
    """Train, evaluate and write ``result.json`` (or ``error.json``); never raises."""
    folder = Path(job.folder)
    if job.done:
        return json.loads((folder / "result.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "job.json", asdict(job))
    (folder / "error.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _train_and_evaluate(job, folder)
    except Exception as e:  # a failed job is recorded and the sweep goes on
        err = {"key": job.key, "config_id": job.config_id, "seed": job.seed,
               "status": "failed", "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc()}
        write_json(folder / "error.json", err)
        return err
    result["warnings"] = sorted({str(w.message) for w in caught})
    result["seconds"] = time.perf_counter() - t0
    write_json(folder / "result.json", result)
    return result


def _train_and_evaluate(job: Job, folder: Path) -> dict[str, Any]:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)  # every job single-threaded, whatever runs it
    try:
        return _train_and_evaluate_1(job, folder)
    finally:
        torch.set_num_threads(old)


def _train_and_evaluate_1(job: Job, folder: Path) -> dict[str, Any]:
    from agents.evaluate import EvaluateConfig, evaluate_policies
    from agents.train import TrainConfig, train_policy

    hp = folder / "hyperparams_sweep.yaml"
    write_text(hp, yaml.safe_dump(job.hyperparams, sort_keys=True))
    cfg = TrainConfig(**job.train, seed=job.seed, device="cpu", progress=False)
    metrics = train_policy(job.predictor, job.data, folder / "train", cfg, hyperparams=hp)
    ev = dict(job.evaluation)
    rules = list(ev.pop("rules"))
    ecfg = EvaluateConfig(**ev, device="cpu")
    res = evaluate_policies(job.predictor, job.data, [str(folder / "train"), *rules],
                            folder / "eval", ecfg, progress=False)
    row = res["policies"][0]
    return {
        "key": job.key, "config_id": job.config_id, "seed": job.seed, "status": "done",
        "options": job.options, "sim": row["sim"]["return"],
        "sim_vs_best_rule": row["sim"].get("vs_best_rule"),
        "true": row.get("true", {}).get("return"),
        "true_vs_best_rule": row.get("true", {}).get("vs_best_rule"),
        "best_rule_sim": res["best_rule_sim"], "best_rule_true": res["best_rule_true"],
        "rules": {r["policy"]: {"sim": r["sim"]["return"]["mean"],
                                "true": r.get("true", {}).get("return", {}).get("mean")}
                  for r in res["policies"][1:]},
        "timesteps": metrics["timesteps"], "eval_history": [
            {"timesteps": h["timesteps"], "mean_return": h["mean_return"]}
            for h in metrics["eval_history"]],
    }
