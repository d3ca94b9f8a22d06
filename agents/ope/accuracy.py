"""Accuracy of the sequential OPE estimators against the TRUE value, on generated shop logs.

Each repeat generates a synthetic dataset (:func:`predictors.synthetic.generate`, its own seed),
then, for every target policy:

* **truth**: the policy's mean return per user over the first ``horizon`` periods, simulated
  in the true world (:func:`predictors.synthetic.true_policy_value`) from the SAME users'
  true states and observable histories at the log's start (``read_start_states(.., "start")``),
  each user tiled ``truth_replicates`` times; its Monte-Carlo standard error is
  ``sqrt(mean_i var_k(G_ik) / (K n))``. One seed per dataset for every policy (common random
  numbers).
* **estimates**: PDIS, WPDIS, sequential DR and FQE (:mod:`agents.ope.sequential`) with a
  percentile-bootstrap interval over users, from the logs only: the panel's first ``horizon``
  periods as per-user trajectories, observations from :func:`predictors.observations_from_panel`
  (what the policies see in the world too), ``pscore`` = the logged propensity.

**Value**: the undiscounted sum over ``horizon`` periods of the world's reward per user,
``revenue - send cost - redeemed discount``, for estimators and truth alike. Users who churn
keep receiving decisions whose sends cost, exactly as in the world.

**Users**: those outside the universal control group (``users.holdout``). The control group is
logged with ``none`` at probability 1, so no estimator can value another policy on it.

**Reward**: the generated logs carry gross revenue only. A coupon is redeemed only when it was
delivered, i.e. its channel was subscribed at the period's start; the panel's ``net`` reward
(:func:`agents.ope.panel.logged_data_from_panel`) subtracts the discount on every purchase after
a coupon action. A real shop reads the redeemed discount off its orders; here it is rebuilt
exactly: ``round(discount_rate * revenue, 2)`` when the user purchased and the channel was
subscribed (unsubscribes seen in the log, plus the unsubscribes before the log from ``truth/``).
:func:`reward_check` compares the logged reward of each row with the truth's expected reward of
the logged action in the same state (``truth/outcomes.parquet``): their mean difference must be
zero up to noise, for the panel reward it is not.

**Summary** per estimator: median relative error ``|estimate - truth| / |truth|`` over
(dataset, policy) pairs, mean Spearman rank correlation of estimates with the truth over the
policies of a dataset, coverage (share of pairs whose interval holds the truth) and mean
interval width.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm import tqdm

from agents.ope.choice import CHOICE_METHODS, choose_estimator
from agents.ope.data import LoggedData, target_action_dist
from agents.ope.fqe import FQEConfig
from agents.ope.marginal import MARGINAL_ESTIMATORS, joint_replicates
from agents.ope.model_based import SIM_ESTIMATORS
from agents.ope.panel import logged_data_from_panel
from agents.ope.sequential import FQE, PDIS, WPDIS, SequentialDR, SequentialEstimator
from agents.policy import Policy
from predictors import (
    ConfigError,
    DatasetSpec,
    GenerateConfig,
    StartStates,
    build_panel,
    check_choice,
    check_int,
    check_number,
    generate,
    observation_names,
    open_dataset,
    read_start_states,
    true_policy_value,
)
from predictors.synthetic import WorldFileError, load_world, read_world

__all__ = [
    "ACCURACY_ESTIMATORS",
    "DEFAULT_ESTIMATORS",
    "DEFAULT_POLICIES",
    "AccuracyConfig",
    "accuracy_logged_data",
    "load_target_policy",
    "make_accuracy_estimators",
    "reward_check",
    "run_ope_accuracy",
    "scored_estimators",
    "time_estimators",
    "true_value",
]

#: Target policies of the benchmark (``rule:`` names of :func:`agents.baselines.parse_rule`).
DEFAULT_POLICIES = (
    "rule:never", "rule:always:email", "rule:always:push", "rule:always:coupon_10",
    "rule:random", "rule:winback", "rule:rfm", "rule:email_capped", "rule:campaign",
    "rule:greedy",
)
#: Estimators the benchmark knows, by name.
ACCURACY_ESTIMATORS = ("pdis", "wpdis", "seq-dr", "fqe") + MARGINAL_ESTIMATORS + SIM_ESTIMATORS
#: The benchmark's default estimators: the MLP-based ``seq-dr`` and ``fqe`` (intervals
#: conditional on their Q model, minutes per policy at long horizons) are opt-in.
DEFAULT_ESTIMATORS = ("pdis", "wpdis") + MARGINAL_ESTIMATORS
#: The goal of the best sequential estimator.
GOAL = {"median_rel_error": 0.05, "spearman": 0.9, "coverage": 0.9}


@dataclass(frozen=True)
class AccuracyConfig:
    """Options of :func:`run_ope_accuracy`.

    Attributes:
        n_users: Users per generated dataset.
        n_periods: Logged periods per dataset (the estimators use the first ``horizon``).
        logging: ``campaign`` or ``uniform`` logging policy.
        horizon: Periods evaluated: the value is the return over the log's first ``horizon``
            periods. Per-decision weights multiply over time (up to 20 per step under campaign
            logging), so long horizons leave the importance-sampling estimators with a handful
            of users; FQE needs ``horizon`` Bellman iterations.
        repeats: Independent datasets (seeds ``seed``, ``seed + 1``, ...).
        truth_replicates: Simulated copies of each start user for the true value.
        n_boot: Bootstrap replicates per interval.
        alpha: One minus the intervals' coverage.
        estimators: Names from :data:`ACCURACY_ESTIMATORS`.
        fqe_steps: Adam steps per Bellman iteration of FQE (and of sequential DR's Q).
        seed: Base seed of the datasets, the truth, the folds and the bootstrap.
        world: The generated shop's world: a preset name
            (:data:`predictors.synthetic.PRESETS`) or a world file. The gate's null world is
            ``inert`` (no action has any effect, sends cost nothing;
            :mod:`agents.ope.gate_bench`); ``null`` is the policy benchmarks' null world,
            where sends still lift visits.
        gate_baseline: Score the selection gate against this policy (one of the policies),
            one candidate at a time (:func:`agents.ope.gate_bench.gate_rows`); ``None``: no gate.
        sim_family: Predictor family of the learned simulator behind ``sim`` / ``sim-dr``
            (fitted on each dataset's panel, :func:`agents.ope.model_based.fit_simulator`).
        sim_replicates: Simulator rollouts per logged state and first action.
        choice: Also score the data-driven choice among the estimators
            (:func:`agents.ope.choice.choose_estimator`) as the rows ``chosen`` (SLOPE-type
            rule) and ``chosen-mse`` (smallest estimated MSE).

    Example:
        >>> AccuracyConfig(n_users=300, n_periods=6, horizon=3).estimators
        ('pdis', 'wpdis', 'fqe-lin', 'mis', 'mdr', 'dr-lin')
    """

    n_users: int = 10_000
    n_periods: int = 52
    logging: str = "campaign"
    horizon: int = 4
    repeats: int = 5
    truth_replicates: int = 20
    n_boot: int = 200
    alpha: float = 0.05
    estimators: tuple[str, ...] = DEFAULT_ESTIMATORS
    fqe_steps: int = 300
    seed: int = 0
    world: str = "default"
    gate_baseline: str | None = "rule:campaign"
    sim_family: str = "markov"
    sim_replicates: int = 1
    choice: bool = True

    def __post_init__(self) -> None:
        check_int(self, "n_users", "n_periods", "horizon", "repeats", "truth_replicates",
                  "fqe_steps", "sim_replicates", ge=1)
        if self.horizon > self.n_periods:
            raise ConfigError(f"`horizon` ({self.horizon}) must be <= `n_periods` "
                              f"({self.n_periods})")
        check_choice(self, "logging", ("campaign", "uniform"))
        try:
            load_world(self.world)  # a preset or a readable, valid world file
        except WorldFileError as e:
            raise ConfigError(f"`world`: {e}") from None
        check_int(self, "n_boot", ge=2)
        check_number(self, "alpha", gt=0, lt=1)
        from predictors.models.config import FAMILIES

        check_choice(self, "sim_family", FAMILIES)
        unknown = [e for e in self.estimators if e not in ACCURACY_ESTIMATORS]
        if unknown or not self.estimators:
            raise ConfigError(f"`estimators` must be a non-empty subset of "
                              f"{ACCURACY_ESTIMATORS}; got {list(self.estimators)}")


def make_accuracy_estimators(names: Sequence[str], fqe_steps: int,
                             seed: int) -> list[SequentialEstimator]:
    """The sequential estimators ``names`` (undiscounted), FQE models seeded by ``seed``; the
    marginal ones (:mod:`agents.ope.marginal`) are not built here but jointly for all
    policies."""
    q = FQEConfig(n_steps=fqe_steps, seed=seed)
    make = {"pdis": PDIS, "wpdis": WPDIS,
            "seq-dr": lambda: SequentialDR(q_model=q, fold_seed=seed),
            "fqe": lambda: FQE(q_model=q)}
    return [make[n]() for n in names if n in make]


def load_target_policy(text: str, spec: DatasetSpec, data: str | Path) -> Policy:
    """``rule:NAME[:...]``, an export or a ``train-policy`` run folder, on the observation vector
    (a trained policy must have been trained on it: ``--env world``)."""
    from agents.loading import load_policy

    return load_policy(text, spec, observation_names(), data)


def _evaluated_users(folder: Path) -> np.ndarray:
    """Positions (= user order of ``truth/users.parquet``) of users outside the control group."""
    users = pd.read_parquet(folder / "truth" / "users.parquet", columns=["user_id", "holdout"])
    ids = users["user_id"].to_numpy()
    if not np.array_equal(ids, np.arange(len(ids))):
        raise ConfigError(f"{folder}: user ids must be 0..n-1 in order, as generated")
    return np.flatnonzero(~users["holdout"].to_numpy(dtype=bool))


def accuracy_logged_data(folder: str | Path, horizon: int, start: StartStates | None = None,
                         reward: str = "world") -> tuple[LoggedData, np.ndarray]:
    """The first ``horizon`` logged periods of the evaluated users (see the module docstring).

    Args:
        folder: A generated dataset (with ``truth/``).
        horizon: Periods kept.
        start: The dataset's start states (read when omitted).
        reward: ``world`` (redeemed discount only on delivered coupons, the world's reward) or
            ``panel`` (the panel's ``net`` reward, for comparison).

    Returns:
        The logged data and the evaluated users' ids (= positions in the start states).
    """
    if reward not in ("world", "panel"):
        raise ConfigError(f"`reward` must be 'world' or 'panel'; got {reward!r}")
    start = start or read_start_states(folder, "start")
    revenue, users = _logged_revenue(Path(folder), horizon)
    return _with_reward(revenue, open_dataset(folder).spec, start, reward), users


def _logged_revenue(folder: Path, horizon: int) -> tuple[LoggedData, np.ndarray]:
    """Logged data whose reward is the period's gross revenue, and the evaluated users."""
    users = _evaluated_users(folder)
    ds = open_dataset(folder)
    panel = build_panel(ds, validate=False)
    keep = (panel["period"] < horizon) & panel["user_id"].isin(users)
    panel = panel[keep.to_numpy()].reset_index(drop=True)
    data = logged_data_from_panel(panel, ds.spec, reward="revenue")
    if data.n_rounds != len(users) * horizon:
        raise ConfigError(f"{folder}: expected one logged decision per user and period "
                          f"({len(users) * horizon}); got {data.n_rounds}")
    return data, users


def _with_reward(data: LoggedData, spec: DatasetSpec, start: StartStates,
                 reward: str) -> LoggedData:
    """Revenue-reward ``data`` with ``revenue - send cost - redeemed discount``."""
    acts = spec.actions
    cost = np.array([a.cost for a in acts])
    rate = np.array([a.discount_rate if a.kind == "discount" else 0.0 for a in acts])
    a, revenue = data.action, data.reward
    delivered = np.ones(data.n_rounds, dtype=bool)
    if reward == "world":
        obs_names = observation_names()
        uid = np.asarray(data.user_id, dtype=np.int64)
        email_off = ((data.obs[:, obs_names.index("email_unsubscribed")] > 0.5)
                     | start.state.email_unsub[uid])
        push_off = ((data.obs[:, obs_names.index("push_unsubscribed")] > 0.5)
                    | start.state.push_unsub[uid])
        email = np.array([x.channel == "email" for x in acts])
        push = np.array([x.channel == "push" for x in acts])
        delivered = (email[a] & ~email_off) | (push[a] & ~push_off)
    redeemed = np.where(delivered & (revenue > 0), rate[a] * revenue, 0.0)
    if reward == "world":
        redeemed = np.round(redeemed, 2)
    return replace(data, reward=revenue - cost[a] - redeemed)


def reward_check(folder: str | Path, data: LoggedData) -> dict[str, Any]:
    """Mean of (logged reward - TRUE expected reward of the logged action), overall and per action.

    Returns:
        ``{"mean_diff", "se", "z", "by_action": {name: {"rows", "mean_diff", "se", "z"}}}``.
    """
    folder = Path(folder)
    horizon = int(data.time_step.max()) + 1
    out = pd.read_parquet(folder / "truth" / "outcomes.parquet",
                          columns=["user_id", "period", "action", "expected_reward"],
                          filters=[("period", "<", horizon)])
    names = list(data.action_names or [])
    code = out["action"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy()
    table = pd.Series(out["expected_reward"].to_numpy(np.float64),
                      index=pd.MultiIndex.from_arrays([out["user_id"].to_numpy(),
                                                       out["period"].to_numpy(np.int64), code]))
    key = pd.MultiIndex.from_arrays([np.asarray(data.user_id), data.time_step, data.action])
    diff = data.reward - table.reindex(key).to_numpy()

    def stats(d: np.ndarray) -> dict[str, float]:
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        mean = float(d.mean())
        return {"rows": len(d), "mean_diff": mean, "se": se, "z": mean / se if se > 0 else 0.0}

    return {**stats(diff), "by_action": {n: stats(diff[data.action == i])
                                        for i, n in enumerate(names) if (data.action == i).any()}}


def true_value(world: Any, policy: Policy, start: StartStates, users: np.ndarray, horizon: int,
               replicates: int, seed: int) -> tuple[float, float]:
    """TRUE mean return per user of ``policy`` over ``horizon`` periods, and its MC error.

    Every user of ``users`` starts ``replicates`` times (tiled); the policy draws its actions
    from ``np.random.default_rng([seed, 1])`` and the world from ``seed``.
    """
    rng = np.random.default_rng([seed, 1])
    tiled = start.subset(np.tile(users, replicates))

    def act(obs: np.ndarray) -> np.ndarray:
        return policy.act(obs, rng).astype(np.int64)

    returns = true_policy_value(world, act, tiled, horizon, seed).reshape(replicates, -1)
    if replicates > 1:
        se = float(np.sqrt(returns.var(axis=0, ddof=1).mean() / returns.size))
    else:
        se = float(returns.std(ddof=1) / np.sqrt(returns.size))
    return float(returns.mean()), se


def _one_dataset(folder: Path, config: AccuracyConfig, policies: Sequence[str],
                 seed: int) -> dict[str, Any]:
    """Truth and estimates of every policy on one generated dataset."""
    spec = open_dataset(folder).spec
    world, start = read_world(folder), read_start_states(folder, "start")
    revenue, users = _logged_revenue(folder, config.horizon)
    data = _with_reward(revenue, spec, start, "world")
    panel_data = _with_reward(revenue, spec, start, "panel")
    first = data.time_step == 0
    obs_gap = float(np.abs(data.obs[first] - start.history.observation()[
        np.asarray(data.user_id[first], dtype=np.int64)]).max())
    rows, notes, dists, objs = [], set(), {}, {}
    for text in policies:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            policy = load_target_policy(text, spec, folder)
            t0 = time.perf_counter()
            truth, se = true_value(world, policy, start, users, config.horizon,
                                   config.truth_replicates, seed)
            row: dict[str, Any] = {"policy": text, "true_value": truth, "true_se": se,
                                   "truth_seconds": time.perf_counter() - t0, "estimates": {}}
            dist = target_action_dist(policy, data)
            dists[text], objs[text] = dist, policy
            for est in make_accuracy_estimators(config.estimators, config.fqe_steps, seed):
                t0 = time.perf_counter()
                iv = est.interval(data, dist, n_boot=config.n_boot, alpha=config.alpha,
                                  seed=seed)
                row["estimates"][est.name] = {
                    "mean": iv.mean, "low": iv.low, "high": iv.high,
                    "rel_error": abs(iv.mean - truth) / abs(truth) if truth else float("nan"),
                    "covers": bool(iv.low <= truth <= iv.high),
                    "seconds": time.perf_counter() - t0}
        notes.update(f"{text}: {w.message}" for w in caught)
        rows.append(row)
    marginal = [e for e in config.estimators if e in MARGINAL_ESTIMATORS]
    gate: list[dict[str, Any]] = []
    if marginal:
        t0 = time.perf_counter()
        rep = joint_replicates(data, dists, n_boot=config.n_boot, seed=seed,
                               estimators=marginal)
        seconds = (time.perf_counter() - t0) / len(rows)
        for row in rows:
            truth = row["true_value"]
            for name in marginal:
                iv = rep.interval(name, row["policy"], config.alpha)
                row["estimates"][name] = {
                    "mean": iv.mean, "low": iv.low, "high": iv.high,
                    "rel_error": abs(iv.mean - truth) / abs(truth) if truth else float("nan"),
                    "covers": bool(iv.low <= truth <= iv.high), "seconds": seconds}
        if config.gate_baseline in dists:
            from agents.ope.gate_bench import gate_rows

            gate = gate_rows(rep, rows, config.gate_baseline, 1 - config.alpha)
    sim_seconds = _add_sim_estimates(folder, config, data, users, start, objs, rows, seed)
    for row in rows:
        row["estimates"] = {e: row["estimates"][e] for e in config.estimators}
    if config.choice and len(config.estimators) > 1:
        _add_choices(rows, config.estimators)
    names = scored_estimators(config)
    spearman = {}
    for name in names:
        est = [r["estimates"][name]["mean"] for r in rows]
        truth = [r["true_value"] for r in rows]
        rho = spearmanr(est, truth).statistic if len(rows) > 2 else float("nan")
        spearman[name] = float(rho) if np.isfinite(rho) else float("nan")
    return {"seed": seed, "n_users": len(users), "n_rounds": data.n_rounds,
            "truth_seed": seed, "obs_check_max_abs_diff": obs_gap,
            "reward_check": reward_check(folder, data),
            "panel_net_reward_check": reward_check(folder, panel_data),
            "policies": rows, "spearman": spearman, "warnings": sorted(notes),
            "gate": gate, "sim_seconds": sim_seconds}


def _estimate_cell(iv: Any, truth: float, seconds: float) -> dict[str, Any]:
    return {"mean": iv.mean, "low": iv.low, "high": iv.high,
            "rel_error": abs(iv.mean - truth) / abs(truth) if truth else float("nan"),
            "covers": bool(iv.low <= truth <= iv.high), "seconds": seconds}


def _add_sim_estimates(folder: Path, config: AccuracyConfig, data: LoggedData,
                       users: np.ndarray, start: StartStates, policies: dict[str, Policy],
                       rows: list[dict[str, Any]], seed: int) -> dict[str, float]:
    """``sim`` / ``sim-dr`` of every policy from a simulator fitted on the dataset's panel
    (all its periods and users); the users start from their observable pre-log history."""
    names = tuple(e for e in config.estimators if e in SIM_ESTIMATORS)
    if not names:
        return {}
    from agents.ope.model_based import (
        SimulatorConfig,
        encoded_static,
        fit_simulator,
        simulator_intervals,
    )
    from predictors import load_users

    ds = open_dataset(folder)
    t0 = time.perf_counter()
    panel = build_panel(ds, validate=False)
    table = load_users(ds, validate=False)
    sim = fit_simulator(panel, ds.spec, table, family=config.sim_family, seed=seed)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ivs = simulator_intervals(
        sim, data, panel[panel["period"] < config.horizon], policies,
        SimulatorConfig(replicates=config.sim_replicates, seed=seed), estimators=names,
        history=start.history.subset(users), static=encoded_static(sim, table, users),
        alpha=config.alpha, n_boot=config.n_boot, seed=seed)
    roll_s = time.perf_counter() - t0
    for row in rows:
        for e in names:
            row["estimates"][e] = _estimate_cell(ivs[row["policy"]][e], row["true_value"],
                                                 roll_s / len(rows))
    return {"fit": fit_s, "rollouts_and_intervals": roll_s}


def _add_choices(rows: list[dict[str, Any]], estimators: Sequence[str]) -> None:
    """Add the rows ``chosen`` / ``chosen-mse`` (the estimator picked per policy, and why)."""
    from agents.ope.base import Interval

    for method, label in zip(CHOICE_METHODS, ("chosen", "chosen-mse"), strict=True):
        for row in rows:
            ivs = {e: Interval(c["mean"], c["low"], c["high"])
                   for e, c in row["estimates"].items() if e in estimators}
            pick = choose_estimator(ivs, method)
            row["estimates"][label] = {**row["estimates"][pick.estimator],
                                       "estimator": pick.estimator, "reason": pick.reason}


def scored_estimators(config: AccuracyConfig) -> list[str]:
    """The estimators of ``config`` plus the choice rows ``chosen``, ``chosen-mse``."""
    names = list(config.estimators)
    return names + (["chosen", "chosen-mse"] if config.choice and len(names) > 1 else [])


def summarize(datasets: list[dict[str, Any]], estimators: Sequence[str],
              policies: Sequence[str]) -> dict[str, Any]:
    """Per-estimator and per-policy figures over all datasets (see the module docstring)."""
    summary = []
    for name in estimators:
        cells = [r["estimates"][name] | {"truth": r["true_value"]}
                 for d in datasets for r in d["policies"]]
        rel = np.array([c["rel_error"] for c in cells])
        rho = np.array([d["spearman"][name] for d in datasets])
        row = {"estimator": name, "median_rel_error": float(np.nanmedian(rel)),
               "mean_rel_error": float(np.nanmean(rel)),
               "spearman_mean": float(np.nanmean(rho)) if np.isfinite(rho).any() else None,
               "spearman_min": float(np.nanmin(rho)) if np.isfinite(rho).any() else None,
               "coverage": float(np.mean([c["covers"] for c in cells])),
               "mean_ci_width": float(np.mean([c["high"] - c["low"] for c in cells])),
               "seconds": float(sum(c["seconds"] for c in cells))}
        row["meets_goal"] = bool(row["median_rel_error"] <= GOAL["median_rel_error"]
                                 and (row["spearman_mean"] or 0.0) >= GOAL["spearman"]
                                 and row["coverage"] >= GOAL["coverage"])
        summary.append(row)
    per_policy = []
    for j, text in enumerate(policies):
        cells = [d["policies"][j] for d in datasets]
        entry: dict[str, Any] = {
            "policy": text, "true_value_mean": float(np.mean([c["true_value"] for c in cells])),
            "true_se_max": float(max(c["true_se"] for c in cells)), "estimators": {}}
        for name in estimators:
            e = [c["estimates"][name] for c in cells]
            entry["estimators"][name] = {
                "mean_estimate": float(np.mean([x["mean"] for x in e])),
                "median_rel_error": float(np.nanmedian([x["rel_error"] for x in e])),
                "coverage": float(np.mean([x["covers"] for x in e]))}
        per_policy.append(entry)
    rel_se = [r["true_se"] / abs(r["true_value"]) for d in datasets for r in d["policies"]
              if r["true_value"]]
    return {"summary": summary, "per_policy": per_policy,
            "truth_rel_se_max": float(max(rel_se)) if rel_se else float("nan")}


def run_ope_accuracy(config: AccuracyConfig | None = None,
                     policies: Sequence[str] = DEFAULT_POLICIES, *,
                     workdir: str | Path | None = None, progress: bool = True,
                     on_dataset: Callable[[dict[str, Any]], None] | None = None,
                     ) -> dict[str, Any]:
    """Generate ``repeats`` datasets and measure every estimator against the truth on each.

    Args:
        config: Options (defaults: :class:`AccuracyConfig`).
        policies: Target policies (``rule:...`` or train-policy run folders).
        workdir: Keep the generated datasets here (``data_<repeat>``); a temporary folder
            that is removed afterwards when omitted.
        progress: Show a progress bar over repeats (stderr).
        on_dataset: Called with each dataset's results as soon as they are ready.

    Returns:
        ``{"config", "value", "policies", "datasets", "summary", "per_policy",
        "truth_rel_se_max", "goal", "seconds"}``: ``datasets[r]["policies"][j]`` holds the
        truth (``true_value``, ``true_se``; ``datasets[r]["truth_seed"]``) and each
        estimator's ``mean, low, high, rel_error, covers``; ``summary`` has per estimator
        ``median_rel_error``, ``spearman_mean``, ``coverage``, ``mean_ci_width`` and
        ``meets_goal``; ``truth_rel_se_max`` is the
        largest Monte-Carlo standard error of a true value relative to it.
    """
    config = config or AccuracyConfig()
    policies = list(policies)
    if not policies:
        raise ConfigError("give at least one target policy")
    t_start = time.perf_counter()
    datasets = []
    with tempfile.TemporaryDirectory(prefix="ope-accuracy-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        for r in tqdm(range(config.repeats), desc="ope-accuracy", unit="dataset",
                      disable=not progress):
            seed = config.seed + r
            t0 = time.perf_counter()
            folder = generate(GenerateConfig(n_users=config.n_users, n_periods=config.n_periods,
                                             logging=config.logging, seed=seed,
                                             world=load_world(config.world)),
                              root / f"data_{r}")
            result = {"repeat": r, **_one_dataset(folder, config, policies, seed)}
            result["seconds"] = time.perf_counter() - t0
            datasets.append(result)
            if on_dataset is not None:
                on_dataset(result)
    from dataclasses import asdict

    from agents.ope.gate_bench import summarize_gate

    return {"config": {**asdict(config), "estimators": list(config.estimators)},
            "gate": summarize_gate(datasets, [e for e in config.estimators
                                              if e in MARGINAL_ESTIMATORS]),
            "value": f"undiscounted sum over the first {config.horizon} periods of revenue - "
                     "send cost - redeemed discount, per user outside the control group",
            "policies": policies, "datasets": datasets,
            **summarize(datasets, scored_estimators(config), policies), "goal": GOAL,
            "seconds": time.perf_counter() - t_start}


def time_estimators(config: AccuracyConfig, policies: Sequence[str]) -> dict[str, Any]:
    """Seconds of every estimator of ``config`` (with ``n_boot`` replicates) for all
    ``policies`` on one generated dataset (seed ``config.seed``); no truth is simulated."""
    with tempfile.TemporaryDirectory(prefix="ope-time-") as tmp:
        t0 = time.perf_counter()
        folder = generate(GenerateConfig(n_users=config.n_users, n_periods=config.n_periods,
                                         logging=config.logging, seed=config.seed,
                                         world=load_world(config.world)),
                          Path(tmp) / "data")
        data, users = accuracy_logged_data(folder, config.horizon)
        spec = open_dataset(folder).spec
        data_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        dists = {text: target_action_dist(load_target_policy(text, spec, folder), data)
                 for text in policies}
        seconds = {"target probabilities": time.perf_counter() - t0}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for est in make_accuracy_estimators(config.estimators, config.fqe_steps,
                                                config.seed):
                t0 = time.perf_counter()
                for dist in dists.values():
                    est.interval(data, dist, n_boot=config.n_boot, seed=config.seed)
                seconds[est.name] = time.perf_counter() - t0
        marginal = [e for e in config.estimators if e in MARGINAL_ESTIMATORS]
        cpu0 = time.process_time()
        if marginal:
            t0 = time.perf_counter()
            joint_replicates(data, dists, n_boot=config.n_boot, seed=config.seed,
                             estimators=marginal)
            seconds[" + ".join(marginal) + " (joint, refit)"] = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    return {"n_users": len(users), "n_rounds": data.n_rounds, "data_seconds": data_s,
            "seconds": seconds, "total_seconds": float(sum(seconds.values())),
            "marginal_cpu_seconds": cpu}
