"""Off-policy evaluation of target policies on a dataset's logs: the table behind ``nudgegym ope``.

For every target policy: the six one-step estimators (per decision) and, optionally, the
sequential ones (PDIS, WPDIS, sequential DR, FQE; per user over the logged periods), each with a
bootstrap 95% interval; the effective sample size of the one-step importance weights
``w_i = pi(a_i | x_i) / pscore_i`` (Kish: ``(sum w)^2 / sum w^2``) and the weight-degeneracy
warnings the estimators raised.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agents.ope.base import effective_sample_size
from agents.ope.data import LoggedData, target_action_dist
from agents.ope.fqe import FQEConfig
from agents.ope.one_step import DM, DR, IPS, SNDR, SNIPS, SwitchDR
from agents.ope.panel import logged_data_from_panel
from agents.ope.reward_model import RidgeRewardModel, cross_fit_rewards
from agents.ope.sequential import FQE, PDIS, WPDIS, SequentialDR
from agents.policy import BasePolicy


def ope_table(logged: LoggedData, policies: dict[str, BasePolicy | np.ndarray], *,
              sequential: bool = True, gamma: float = 1.0, n_boot: int = 500, seed: int = 0,
              progress: bool = True) -> list[dict[str, Any]]:
    """Estimates with intervals for each target policy on the same logs.

    Args:
        logged: The logged decisions (with user ids and time steps for the sequential ones).
        policies: Name -> policy of the common interface (or an action table).
        sequential: Also run the per-user estimators.
        gamma: Discount of the sequential estimators.
        n_boot: Bootstrap resamples.
        seed: Seed of the folds, the FQE and the bootstrap.
        progress: tqdm bar over policies.

    Returns:
        One dict per policy: ``policy``, ``estimates`` (estimator, unit, mean, low, high),
        ``ess`` and ``ess_ratio`` of the one-step weights, ``warnings``.
    """
    q = cross_fit_rewards(logged, RidgeRewardModel(), n_folds=2, seed=seed)
    results = []
    for name, policy in tqdm(policies.items(), desc="policies", disable=not progress,
                             leave=False):
        dist = target_action_dist(policy, logged)
        w = dist[np.arange(logged.n_rounds), logged.action] / logged.pscore
        ess = effective_sample_size(w)
        rows = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for est in (DM(), IPS(), SNIPS(), DR(), SNDR(), SwitchDR()):
                iv = est.interval(logged, dist, q if est.requires_reward_model else None,
                                  n_boot=n_boot, seed=seed)
                rows.append({"estimator": est.name, "unit": "decision", **vars(iv)})
            if sequential:
                fqe = FQEConfig(seed=seed)
                for est in (PDIS(gamma=gamma), WPDIS(gamma=gamma),
                            SequentialDR(gamma=gamma, q_model=fqe, fold_seed=seed),
                            FQE(gamma=gamma, q_model=fqe)):
                    iv = est.interval(logged, dist, n_boot=n_boot, seed=seed)
                    rows.append({"estimator": est.name, "unit": "user", **vars(iv)})
        results.append({"policy": name, "estimates": rows, "ess": ess,
                        "ess_ratio": ess / logged.n_rounds,
                        "warnings": sorted({str(m.message) for m in caught})})
    return results


def true_value_per_decision(data: str | Path, policies: dict[str, Any], *,
                            seed: int = 0) -> dict[str, float]:
    """TRUE value per logged decision of each policy on a synthetic shop (``truth/``).

    Every logged user starts from their true state at the start of the log and follows the
    policy for the logged number of periods in the world; the value per decision is the mean
    reward per user-period, the quantity the one-step estimators estimate on these logs.
    """
    from agents.ope.accuracy import true_value
    from predictors.synthetic import read_start_states, read_world

    world, start = read_world(data), read_start_states(data, "start")
    periods = int(json.loads((Path(data) / "truth" / "world.json").read_text())
                  ["generate"]["n_periods"])
    everyone = np.arange(start.n)
    return {name: true_value(world, policy, start, everyone, periods, 1, seed)[0] / periods
            for name, policy in policies.items()}


def ope_report(data: str | Path, policies: list[str], *, reward: str = "net",
               sequential: bool = True, gamma: float = 1.0, n_boot: int = 500, seed: int = 0,
               memory_limit: str = "4GB", progress: bool = True,
               truth: bool = True) -> dict[str, Any]:
    """Off-policy evaluation of ``policies`` (``rule:...``, export or run folders) on ``data``.

    Args:
        truth: On a synthetic shop, also compute each policy's TRUE value per decision
            (:func:`true_value_per_decision`) to set beside the estimates.

    Returns:
        JSON-ready dict: the logs' size, the logging policy's mean reward,
        :func:`ope_table`'s rows and, on a synthetic shop, ``truth`` (policy -> value).
    """
    from predictors import build_panel, open_dataset

    ds = open_dataset(data)
    logged = logged_data_from_panel(build_panel(ds, memory_limit=memory_limit), ds.spec,
                                    reward=reward)
    from agents.loading import load_policy
    from predictors import observation_names

    targets = {text: load_policy(text, ds.spec, observation_names(), data) for text in policies}
    report = {"data": str(data), "reward": reward, "n_rounds": logged.n_rounds,
              "n_users": int(len(np.unique(logged.user_id))),
              "logging_mean_reward": float(logged.reward.mean()),
              "results": ope_table(logged, targets, sequential=sequential, gamma=gamma,
                                   n_boot=n_boot, seed=seed, progress=progress)}
    prop = ds.spec.extra.get("propensity") if isinstance(ds.spec.extra, dict) else None
    if isinstance(prop, dict) and prop.get("source") == "estimated":
        report["propensity"] = {k: prop.get(k) for k in ("source", "model", "n_folds", "log_loss",
                                                         "log_loss_marginal", "ece", "warning")}
    if truth and reward == "net" and ds.truth_folder is not None:
        report["truth"] = true_value_per_decision(data, targets, seed=seed)
    return report


def plot_ope(report: dict[str, Any], path: str | Path, unit: str = "decision") -> Path:
    """Estimates with 95% intervals, one row of points per policy, one colour per estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from predictors.io import atomic_path

    results = report["results"]
    estimators = [r["estimator"] for r in results[0]["estimates"] if r["unit"] == unit]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(results) * max(1, len(estimators)) / 3 + 2))
    for j, est in enumerate(estimators):
        ys, xs, lo, hi = [], [], [], []
        for i, res in enumerate(results):
            r = next(e for e in res["estimates"] if e["estimator"] == est)
            ys.append(i + (j - len(estimators) / 2) * 0.1)
            xs.append(r["mean"])
            lo.append(max(0.0, r["mean"] - r["low"]))
            hi.append(max(0.0, r["high"] - r["mean"]))
        ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", capsize=3, label=est)
    ax.axvline(report["logging_mean_reward"] if unit == "decision" else np.nan, color="grey",
               linestyle=":", label="logging policy")
    ax.set_yticks(range(len(results)), [r["policy"] for r in results])
    ax.set_xlabel(f"estimated value per {unit} ({report['reward']} reward)")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Off-policy estimates with 95% bootstrap intervals")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
