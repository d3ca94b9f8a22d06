"""RL against the best rule, measured: seeds x algorithms, TRUE value, time-to-value.

:func:`true_comparison` runs policies in the TRUE synthetic world from the same start users
(a generated dataset's users at the end of its log) with one seed (common random numbers) and
reports each one's mean return and its paired 95% CI against a reference policy (the tuned
rule). :func:`bench_rl` trains every ``algo x seed`` with :func:`agents.train.train_policy`
(every periodic evaluation is compared with the reference on the same held-out users, so the
run records the wall time until the policy first passes it: time-to-value) and then compares
the final policies in the true world. ``nudgegym bench train --env world`` is its command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluate import mean_ci
from agents.train import TrainConfig, train_policy
from predictors import ConfigError

__all__ = ["bench_rl", "static_features", "true_comparison"]


def true_comparison(data: str | Path, policies: dict[str, Any], reference: str,
                    n_users: int = 20_000, horizon: int = 26, seed: int = 0,
                    static: np.ndarray | None = None) -> dict[str, Any]:
    """TRUE value of each policy and its paired difference against ``policies[reference]``.

    Args:
        data: A generated dataset; its first ``n_users`` users at the end of the log start.
        policies: Name -> policy (``act(obs, rng)``) reading the history observation (followed
            by ``static`` when given).
        reference: The key of the reference policy.
        n_users: Start users (all when the dataset has fewer).
        horizon: Periods.
        seed: Seed of the common random numbers.
        static: ``(users of data, k)`` static features appended to every observation, rows in
            the order of ``truth/users.parquet`` (:func:`static_features`).

    Returns:
        ``n_users``, ``horizon``, ``seed`` and per policy ``return`` and ``vs_reference``
        (mean and 95% CI; also relative to the reference's mean in ``vs_reference_pct``).
    """
    from envs.world_vec_env import world_from_dataset
    from predictors import read_start_states, true_policy_value

    if reference not in policies:
        raise ConfigError(f"reference {reference!r} is not among the policies {list(policies)}")
    world = world_from_dataset(data)
    starts = read_start_states(data, "end")
    starts = starts.subset(np.arange(min(starts.n, n_users)))
    extra = None if static is None else np.asarray(static, np.float32)[:starts.n]
    returns = {}
    for name, policy in policies.items():
        prng = np.random.default_rng([seed, 1])

        def act(obs: np.ndarray, p: Any = policy, r: np.random.Generator = prng) -> np.ndarray:
            obs = obs.astype(np.float32)
            if extra is not None:
                obs = np.concatenate([obs, extra], axis=1)
            return np.asarray(p.act(obs, r), dtype=np.int64)

        returns[name] = true_policy_value(world, act, starts, horizon, seed=seed)
    ref = returns[reference]
    rows = {}
    for name, ret in returns.items():
        d = mean_ci(ret - ref)
        rows[name] = {"return": mean_ci(ret), "vs_reference": d,
                      "vs_reference_pct": {k: 100 * v / float(ref.mean()) for k, v in d.items()}}
    return {"n_users": int(starts.n), "horizon": horizon, "seed": seed, "reference": reference,
            "policies": rows}


def static_features(predictor: str | Path, data: str | Path) -> tuple[np.ndarray, list[str]]:
    """The predictor's encoding of a generated dataset's users table, rows in the order of
    ``truth/users.parquet`` (the start users of :func:`true_comparison`), and its names."""
    import pandas as pd

    from envs.simulator import static_feature_names
    from predictors import load_users, open_dataset
    from predictors.models import BehaviorPredictor, PredictorEnsemble, is_ensemble_folder

    pred = (PredictorEnsemble.load(predictor, device="cpu") if is_ensemble_folder(predictor)
            else BehaviorPredictor.load(predictor, device="cpu"))
    ids = pd.read_parquet(Path(data) / "truth" / "users.parquet", columns=["user_id"])["user_id"]
    users = load_users(open_dataset(data), validate=False)
    enc = np.asarray(pred.encoder_.transform(users, ids.to_numpy()), np.float32)
    return enc, static_feature_names(pred)


def bench_rl(predictor: str | Path, data: str | Path, out: str | Path, reference: str,
             config: TrainConfig, seeds: Sequence[int], algos: Sequence[str],
             hyperparams: str | Path | None = None, eval_data: str | Path | None = None,
             eval_users: int = 20_000, extra_rules: Sequence[str] = ("rule:email_capped",),
             warm_start: bool = False) -> dict[str, Any]:
    """Train ``algos x seeds`` in ``config.env`` and compare them with ``reference``.

    Args:
        predictor: Predictor run (its splits give the training and evaluation users).
        data: The dataset it was trained on (generated: needs ``truth/``).
        out: Folder of the runs (``ALGO_sSEED``) and ``bench.json``.
        reference: The rule to beat (``rule:...`` or a ``tune-rule`` run).
        config: Training options (``algo``, ``seed`` and ``reference`` are set per run).
        seeds: Training seeds.
        algos: Algorithms.
        hyperparams: YAML overriding the algorithms' defaults.
        eval_data: Dataset whose users start the final TRUE evaluation (default ``data``:
            a different generated dataset of the same world keeps training and evaluation
            users apart).
        eval_users: Users of the final evaluation.
        extra_rules: Other rules shown in the final table.
        warm_start: Warm-start every policy from the reference (:mod:`agents.warm_start`).
    """
    from agents.loading import load_policy
    from predictors import observation_names, open_dataset

    out = Path(out)
    spec = open_dataset(data).spec
    names = observation_names()
    static = None
    if config.static_features:
        static, static_names = static_features(predictor, eval_data or data)
        names = names + static_names
    rows, trained = [], {}
    for algo in algos:
        for seed in seeds:
            cfg = replace(config, algo=algo, seed=seed, reference=reference,
                          warm_start=reference if warm_start else None)
            run = out / f"{algo}_s{seed}"
            m = train_policy(predictor, data, run, cfg, hyperparams=hyperparams)
            policy = load_policy(str(run), spec, names, data)
            if list(policy.observation_names) != names:
                raise ConfigError(f"the final TRUE evaluation gives {len(names)} features; "
                                  f"{run} observes {len(policy.observation_names)}")
            trained[f"{algo}_s{seed}"] = policy
            rows.append({"run": f"{algo}_s{seed}", "algo": algo, "seed": seed,
                         "timesteps": m["timesteps"], "train_seconds": m["train_seconds"],
                         "fps": m["fps"], "cpu_seconds": m["cpu_seconds"],
                         "seconds_to_pass": m["reference"]["seconds_to_pass"],
                         "timesteps_to_pass": m["reference"]["timesteps_to_pass"],
                         "seconds_to_ci_above": m["reference"]["seconds_to_ci_above"],
                         "final_eval": m["final_eval"], "warm_start": m.get("warm_start")})
    policies = {"reference": load_policy(reference, spec, names, data)}
    policies.update({r: load_policy(r, spec, names, data) for r in extra_rules})
    policies.update(trained)
    comparison = true_comparison(eval_data or data, policies, "reference", eval_users,
                                 config.horizon, seed=12345, static=static)
    for row in rows:
        row["true"] = comparison["policies"][row["run"]]
    return {"reference": reference, "config": {k: v for k, v in vars(config).items()},
            "hyperparams": str(hyperparams) if hyperparams else None,
            "eval_data": str(eval_data or data), "runs": rows, "comparison": comparison}


def bench_table(result: dict[str, Any]) -> str:
    """The bench as a markdown table (TRUE value vs the reference, time-to-value).

    ``warm-start s`` is the wall time of the warm start (``-`` without one); ``train s`` and
    ``CPU s`` are those of the RL training after it. Time-to-value is the wall time of
    training (warm start included) until a periodic
    evaluation on the held-out users first has a mean above the reference (``mean``) or a
    paired 95% CI above it (``CI``); those evaluations use fewer users than the final one.
    """
    comp = result["comparison"]
    lines = [f"TRUE value over {comp['n_users']} start users x {comp['horizon']} periods "
             f"(common random numbers); reference `{result['reference']}`", "",
             "| policy | TRUE return [95% CI] | vs reference [95% CI] | vs reference % | "
             "steps | warm-start s | train s | CPU s | time to pass reference (s): mean / CI |",
             "|---|---|---|---|---|---|---|---|---|"]
    runs = {r["run"]: r for r in result["runs"]}
    for name, row in comp["policies"].items():
        r, d, p = row["return"], row["vs_reference"], row["vs_reference_pct"]
        run = runs.get(name)
        warm = (run or {}).get("warm_start") or {}
        extra = (["-", "-", "-", "-", "-"] if run is None else
                 [f"{run['timesteps']:,}",
                  f"{warm['seconds']:.0f}" if "seconds" in warm else "-",
                  f"{run['train_seconds']:.0f}",
                  f"{run['cpu_seconds']:.0f}",
                  f"{_secs(run['seconds_to_pass'])} / {_secs(run.get('seconds_to_ci_above'))}"])
        lines.append(f"| {name} | {r['mean']:.2f} [{r['low']:.2f}, {r['high']:.2f}] | "
                     f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] | "
                     f"{p['mean']:+.1f}% [{p['low']:+.1f}, {p['high']:+.1f}] | "
                     + " | ".join(extra) + " |")
    return "\n".join(lines) + "\n"


def _secs(x: float | None) -> str:
    return "not reached" if x is None else f"{x:.0f}"
