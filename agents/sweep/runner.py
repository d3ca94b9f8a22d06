"""Run a sweep: list the jobs, skip the finished ones, run the rest through an executor.

:func:`list_jobs` turns configs into jobs before anything runs; :func:`run_sweep` trains the
predictors the shop asks for (once per family), runs the jobs (a tqdm bar over jobs with an
ETA), and writes ``sweep.json`` / ``sweep.md`` / plots (:mod:`agents.sweep.results`).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

import predictors
from agents.sweep.config import SweepConfig, check_hyperparams, split_options
from agents.sweep.jobs import (
    Job,
    PredictorJob,
    job_key,
    predictor_fingerprint,
    run_job,
    run_predictor_job,
)
from agents.sweep.results import summarise, write_results
from agents.sweep.search import grid_configs, optuna_study, random_configs, suggest
from predictors.executors import Executor, SerialExecutor, map_ordered
from predictors.io import write_json

__all__ = ["list_jobs", "run_sweep"]


def _data_fingerprint(data: Path) -> dict[str, str]:
    from agents.export import data_fingerprint

    return data_fingerprint(data)


def _shop(cfg: SweepConfig, out: Path) -> tuple[dict[str, Any], dict[str, PredictorJob]]:
    """(fingerprint of the shop, predictor jobs by family)."""
    data_fp = _data_fingerprint(cfg.data)
    if cfg.predictor is not None:
        return {"data": data_fp, "predictor": predictor_fingerprint(cfg.predictor)}, {}
    families = cfg.grid.get("family", [cfg.family])
    pjobs = {}
    for fam in families:
        key = job_key({"family": fam, "epochs": cfg.predictor_epochs,
                       "seed": cfg.predictor_seed, "data": data_fp,
                       "version": predictors.__version__})
        pjobs[fam] = PredictorJob(key, fam, cfg.predictor_epochs, cfg.predictor_seed,
                                  str(cfg.data), str(out / "predictors" / key[:16]))
    return {"data": data_fp}, pjobs


def list_jobs(cfg: SweepConfig, out: Path, configs: list[dict[str, Any]],
              shop: tuple[dict[str, Any], dict[str, PredictorJob]] | None = None) -> list[Job]:
    """Every (config, seed) of ``configs`` as a :class:`Job` (nothing runs)."""
    fingerprint, pjobs = shop or _shop(cfg, out)
    evaluation = {"horizon": cfg.horizon, "start_users": cfg.start_users,
                  "max_users": cfg.users, "replicates": cfg.replicates,
                  "seed": cfg.eval_seed, "rules": list(cfg.rules)}
    jobs = []
    for options in configs:
        train, hyper, family = split_options(options, cfg.file)
        check_hyperparams(train.get("algo", "ppo"), hyper, cfg.file)
        family = family or cfg.family
        pred = str(cfg.predictor) if cfg.predictor is not None else pjobs[family].folder
        shop_id = fingerprint if cfg.predictor is not None else {
            **fingerprint, "predictor_job": pjobs[family].key}
        base = {"options": options, "evaluation": evaluation, "shop": shop_id,
                "version": predictors.__version__}
        config_id = job_key(base)
        for seed in cfg.seeds:
            key = job_key({**base, "seed": seed})
            if any(j.key == key for j in jobs):
                continue  # the same config twice (random / optuna proposals)
            jobs.append(Job(key=key, config_id=config_id[:16], options=options, seed=seed,
                            data=str(cfg.data), predictor=pred,
                            folder=str(out / "jobs" / key[:16]), train=train,
                            hyperparams=hyper, evaluation=evaluation))
    return jobs


def _run(jobs: list[Job], executor: Executor, results: dict[str, dict[str, Any]],
         bar: tqdm) -> None:
    todo = [j for j in jobs if not j.done]
    for j in jobs:
        if j.done:
            results[j.key] = run_job(j)  # reads result.json
    bar.total = (bar.total or 0) + len(jobs)
    bar.update(len(jobs) - len(todo))
    for i, res in executor.imap(run_job, todo):
        results[todo[i].key] = res
        bar.update()
        if res["status"] != "done":
            bar.write(f"job {Path(todo[i].folder).name} (seed {todo[i].seed}) failed: "
                      f"{res['error']}")


def run_sweep(cfg: SweepConfig, out: str | Path, executor: Executor | None = None,
              method: str | None = None, trials: int | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the sweep into ``out``; return the content of ``sweep.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    executor = executor or SerialExecutor()
    method = method or cfg.method
    trials = trials if trials is not None else cfg.trials
    if method != "grid" and trials < 1:
        raise predictors.ConfigError(f"--trials must be >= 1 for {method} search; got {trials}")
    t0 = time.perf_counter()
    shop = _shop(cfg, out)
    jobs: list[Job] = []
    if method != "optuna":  # every job is listed before anything runs
        configs = (grid_configs(cfg) if method == "grid"
                   else random_configs(cfg, trials, cfg.search_seed))
        jobs = list_jobs(cfg, out, configs, shop)
        write_json(out / "jobs.json", [asdict(j) for j in jobs])
    pjobs = [p for p in shop[1].values() if not (Path(p.folder) / "predictor.json").is_file()]
    if pjobs:
        map_ordered(executor, run_predictor_job, pjobs)
    results: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=0, unit="job", desc="sweep", disable=not progress)
    try:
        if method == "optuna":
            jobs = _optuna(cfg, out, executor, trials, shop, results, bar)
        else:
            _run(jobs, executor, results, bar)
    finally:
        bar.close()
    summary = summarise(jobs, results, list(cfg.grid))
    timing = {"executor": executor.name, "workers": executor.workers,
              "seconds": time.perf_counter() - t0,
              "job_seconds": {j.key[:16]: results[j.key].get("seconds") for j in jobs
                              if j.key in results}}
    write_results(summary, timing, out)
    return summary


def _optuna(cfg: SweepConfig, out: Path, executor: Executor, trials: int,
            shop: tuple[dict[str, Any], dict[str, PredictorJob]],
            results: dict[str, dict[str, Any]], bar: tqdm) -> list[Job]:
    """Seeded TPE: ask one batch of ``executor.workers`` trials, run their seeds, tell."""
    study = optuna_study(cfg.search_seed)
    all_jobs: list[Job] = []
    asked = 0
    while asked < trials:
        batch = [study.ask() for _ in range(min(executor.workers, trials - asked))]
        asked += len(batch)
        configs = [suggest(t, cfg) for t in batch]
        jobs = list_jobs(cfg, out, configs, shop)
        seen = {j.key for j in all_jobs}
        _run([j for j in jobs if j.key not in seen], executor, results, bar)
        all_jobs += [j for j in jobs if j.key not in seen]
        for trial, options in zip(batch, configs, strict=True):
            mine = [j for j in jobs if j.options == options]
            s = summarise(mine, results, list(cfg.grid))
            lb = s["configs"][0]["lower_bound"] if s["configs"] else None
            if lb is None:
                study.tell(trial, state=_failed_state())
            else:
                study.tell(trial, lb)
    write_json(out / "jobs.json", [asdict(j) for j in all_jobs])
    return all_jobs


def _failed_state() -> Any:
    import optuna

    return optuna.trial.TrialState.FAIL
