"""Off-policy evaluation of target policies on a dataset's logs: the table behind ``nudgegym ope``.

For every target policy: the six one-step estimators (per decision; DM, DR, SNDR and Switch-DR
with the reward model held fixed, ``kind="conditional"``), DM and DR with the reward model
refitted on every resample of users (``dm-refit``, ``dr-refit``) and, optionally, the
sequential ones (PDIS, WPDIS, and linear FQE / marginal IS / marginal DR / per-decision DR of
:mod:`agents.ope.marginal`, refitted per resample; per user over the logged periods), each with
a bootstrap 95% interval and its ``kind``; the effective sample size of the one-step importance
weights
``w_i = pi(a_i | x_i) / pscore_i`` (Kish: ``(sum w)^2 / sum w^2``) and the weight-degeneracy
warnings the estimators raised. With a predictor, the learned simulator's ``sim`` and ``sim-dr``
(:mod:`agents.ope.model_based`) join the per-user rows; every policy gets the estimator that
:func:`agents.ope.choice.choose_estimator` picks per unit, with its reason.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from agents.ope.base import Interval, effective_sample_size
from agents.ope.data import LoggedData, target_action_dist

if TYPE_CHECKING:
    from agents.policy import BasePolicy
from agents.ope.marginal import MarginalConfig, joint_replicates
from agents.ope.one_step import DM, DR, IPS, SNDR, SNIPS, SwitchDR
from agents.ope.panel import logged_data_from_panel
from agents.ope.refit import refit_intervals
from agents.ope.reward_model import RidgeRewardModel, cross_fit_rewards
from agents.ope.sequential import PDIS, WPDIS


def ope_table(logged: LoggedData, policies: dict[str, BasePolicy | np.ndarray], *,
              sequential: bool = True, gamma: float = 1.0, n_boot: int = 500, seed: int = 0,
              progress: bool = True,
              extra: dict[str, dict[str, Interval]] | None = None) -> list[dict[str, Any]]:
    """Estimates with intervals for each target policy on the same logs.

    Args:
        logged: The logged decisions (with user ids and time steps for the sequential ones).
        policies: Name -> policy of the common interface (or an action table).
        sequential: Also run the per-user estimators.
        gamma: Discount of the sequential estimators.
        n_boot: Bootstrap resamples.
        seed: Seed of the folds, the FQE and the bootstrap.
        progress: tqdm bar over policies.
        extra: Policy name -> further per-user estimates (e.g. ``sim``, ``sim-dr``).

    Returns:
        One dict per policy: ``policy``, ``estimates`` (estimator, unit, mean, low, high, kind),
        ``ess`` and ``ess_ratio`` of the one-step weights, ``warnings``, and ``choice``: per
        unit (``decision``, ``user``) the estimator :func:`agents.ope.choice.choose_estimator`
        picks (``estimator``, ``mean``, ``low``, ``high``, ``reason``, ``rejected``).
    """
    q = cross_fit_rewards(logged, RidgeRewardModel(), n_folds=2, seed=seed)
    dists = {name: target_action_dist(p, logged) for name, p in policies.items()}
    refit = refit_intervals(logged, dists, n_boot=n_boot, seed=seed)
    joint = (joint_replicates(logged, dists, MarginalConfig(gamma=gamma), n_boot=n_boot,
                              seed=seed) if sequential else None)
    results = []
    for name in tqdm(dists, desc="policies", disable=not progress, leave=False):
        dist = dists[name]
        w = dist[np.arange(logged.n_rounds), logged.action] / logged.pscore
        ess = effective_sample_size(w)
        rows = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for est in (DM(), IPS(), SNIPS(), DR(), SNDR(), SwitchDR()):
                iv = est.interval(logged, dist, q if est.requires_reward_model else None,
                                  n_boot=n_boot, seed=seed)
                rows.append({"estimator": est.name, "unit": "decision", **vars(iv)})
            for est_name, iv in zip(("dm-refit", "dr-refit"), refit[name], strict=True):
                rows.append({"estimator": est_name, "unit": "decision", **vars(iv)})
            if joint is not None:
                for est in (PDIS(gamma=gamma), WPDIS(gamma=gamma)):
                    iv = est.interval(logged, dist, n_boot=n_boot, seed=seed)
                    rows.append({"estimator": est.name, "unit": "user", **vars(iv)})
                for est_name in joint.estimators:
                    rows.append({"estimator": est_name, "unit": "user",
                                 **vars(joint.interval(est_name, name))})
            for est_name, iv in (extra or {}).get(name, {}).items():
                rows.append({"estimator": est_name, "unit": "user", **vars(iv)})
        results.append({"policy": name, "estimates": rows, "ess": ess,
                        "ess_ratio": ess / logged.n_rounds,
                        "warnings": sorted({str(m.message) for m in caught}),
                        "choice": _choices(rows)})
    return results


def _choices(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per unit, the estimator the SLOPE-type rule chooses, and why."""
    from agents.ope.choice import choose_estimator

    out = {}
    for unit in ("decision", "user"):
        ivs = {r["estimator"]: Interval(r["mean"], r["low"], r["high"], r["kind"])
               for r in rows if r["unit"] == unit}
        if len(ivs) < 2:
            continue
        try:
            pick = choose_estimator(ivs)
        except ValueError as err:
            out[unit] = {"estimator": None, "reason": str(err)}
            continue
        out[unit] = {"estimator": pick.estimator, "mean": pick.interval.mean,
                     "low": pick.interval.low, "high": pick.interval.high,
                     "method": pick.method, "reason": pick.reason, "rejected": pick.rejected}
    return out


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
               truth: bool = True, target_tables: dict[str, Any] | None = None,
               predictor: str | Path | None = None, sim_config: Any = None,
               ) -> dict[str, Any]:
    """Off-policy evaluation of ``policies`` (``rule:...``, export or run folders) on ``data``.

    Args:
        target_tables: Name -> table of target probabilities (``user_id``, ``period``,
            ``prob__<action>``; :func:`agents.ope.decisions.target_probs_from_table`),
            evaluated beside ``policies``.
        truth: On a synthetic shop, also compute each policy's TRUE value per decision
            (:func:`true_value_per_decision`) to set beside the estimates.
        predictor: A predictor run folder (or ensemble folder) fitted on this shop: adds the
            learned simulator's ``sim`` and ``sim-dr`` per user
            (:mod:`agents.ope.model_based`; needs ``reward="net"``; policies given as
            probability tables get none).
        sim_config: :class:`agents.ope.model_based.SimulatorConfig` of those.

    Returns:
        JSON-ready dict: the logs' size, the logging policy's mean reward,
        :func:`ope_table`'s rows and, on a synthetic shop, ``truth`` (policy -> value).
    """
    from predictors import build_panel, open_dataset

    ds = open_dataset(data)
    panel = build_panel(ds, memory_limit=memory_limit)
    logged = logged_data_from_panel(panel, ds.spec, reward=reward)
    from agents.loading import load_policy
    from agents.ope.decisions import target_probs_from_table
    from predictors import observation_names

    targets: dict[str, Any] = {text: load_policy(text, ds.spec, observation_names(), data)
                               for text in policies}
    for name, table in (target_tables or {}).items():
        targets[name] = target_probs_from_table(table, logged, ds.spec.action_names,
                                                keys=("user_id", "period"), source=name)
    report = {"data": str(data), "reward": reward, "n_rounds": logged.n_rounds,
              "n_users": int(len(np.unique(logged.user_id))),
              "logging_mean_reward": float(logged.reward.mean()),
              "results": ope_table(logged, targets, sequential=sequential, gamma=gamma,
                                   n_boot=n_boot, seed=seed, progress=progress,
                                   extra=_sim_estimates(predictor, ds, panel, logged, targets,
                                                        reward, sim_config, gamma, n_boot,
                                                        seed))}
    prop = ds.spec.extra.get("propensity") if isinstance(ds.spec.extra, dict) else None
    if isinstance(prop, dict) and prop.get("source") == "estimated":
        report["propensity"] = {k: prop.get(k) for k in ("source", "model", "n_folds", "log_loss",
                                                         "log_loss_marginal", "ece", "warning")}
    if truth and reward == "net" and ds.truth_folder is not None:
        report["truth"] = true_value_per_decision(
            data, {k: v for k, v in targets.items() if not isinstance(v, np.ndarray)}, seed=seed)
    return report


def _sim_estimates(predictor: str | Path | None, ds: Any, panel: Any, logged: LoggedData,
                   targets: dict[str, Any], reward: str, sim_config: Any, gamma: float,
                   n_boot: int, seed: int) -> dict[str, dict[str, Interval]] | None:
    """``sim`` / ``sim-dr`` of the policy targets from the predictor's simulator."""
    if predictor is None:
        return None
    if reward != "net":
        raise ValueError(f"--predictor (sim, sim-dr) values the net reward, as the simulator "
                         f"does; got --reward {reward}")
    from agents.ope.model_based import SimulatorConfig, encoded_static, simulator_intervals
    from envs.simulator import ActivityModel, ShopSimulator
    from predictors import load_users
    from predictors.models import BehaviorPredictor, PredictorEnsemble, is_ensemble_folder

    pred = (PredictorEnsemble.load(predictor) if is_ensemble_folder(predictor)
            else BehaviorPredictor.load(predictor))
    sim = ShopSimulator(pred, ds.spec, ActivityModel.fit(panel))
    config = sim_config or SimulatorConfig(gamma=gamma, seed=seed)
    policies = {k: v for k, v in targets.items() if not isinstance(v, np.ndarray)}
    if not policies:
        return None
    users = np.unique(logged.user_id)
    return simulator_intervals(sim, logged, panel, policies, config,
                               static=encoded_static(sim, load_users(ds, validate=False), users),
                               n_boot=n_boot, seed=seed)


def decision_log_report(decisions: Any, target_tables: dict[str, Any], *,
                        reward: str = "reward", sequential: bool = True, gamma: float = 1.0,
                        n_boot: int = 500, seed: int = 0) -> dict[str, Any]:
    """:func:`ope_report` on a decision log of ``nudgegym score`` joined with its rewards.

    Targets are tables of probabilities (:func:`agents.ope.decisions.target_probs_from_table`,
    keyed by ``user_id`` when both tables have it, else by row order). The sequential
    estimators run when the log has ``user_id`` and ``period``.
    """
    from agents.ope.decisions import logged_data_from_decisions, target_probs_from_table

    logged = logged_data_from_decisions(decisions, reward=reward)
    names = list(logged.action_names or ())
    keys: tuple[str, ...] = ()
    if logged.time_step is not None:
        keys = ("user_id", "period")
    elif "user_id" in decisions.columns:
        keys = ("user_id",)
        logged = replace(logged, user_id=decisions["user_id"].to_numpy(),
                         time_step=np.zeros(logged.n_rounds, dtype=np.int64))
    targets = {}
    for name, table in target_tables.items():
        use = keys if all(k in table.columns for k in keys) else ()
        if use == ("user_id",) and decisions["user_id"].duplicated().any():
            raise ValueError("decision log: `user_id` repeats; add a `period` column")
        targets[name] = target_probs_from_table(table, logged, names, keys=use, source=name)
    seq = sequential and "period" in decisions.columns
    return {"data": "decision log", "reward": reward, "n_rounds": logged.n_rounds,
            "n_users": int(len(np.unique(logged.user_id))) if logged.user_id is not None
            else logged.n_rounds,
            "logging_mean_reward": float(logged.reward.mean()),
            "results": ope_table(logged, targets, sequential=seq, gamma=gamma, n_boot=n_boot,
                                 seed=seed, progress=False)}


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
