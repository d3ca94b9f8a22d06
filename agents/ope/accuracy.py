"""Accuracy of the sequential OPE estimators against the TRUE value, on generated shop logs.

Each repeat generates a synthetic dataset (:func:`predictors.synthetic.generate`, its own seed,
in the world :attr:`AccuracyConfig.world`), then, for every target policy:

* **truth**: the policy's mean return per user over the first ``horizon`` periods, simulated
  in the true world from the SAME users' true states at the log's start, with its Monte-Carlo
  standard error (:func:`agents.ope.accuracy_logs.true_value`). One seed per dataset for every
  policy (common random numbers).
* **estimates**: PDIS, WPDIS, sequential DR and FQE (:mod:`agents.ope.sequential`), the
  marginal estimators (:mod:`agents.ope.marginal`) and optionally the learned simulator's
  (:mod:`agents.ope.model_based`), each with a bootstrap interval over users, from the logs
  only: the panel's first ``horizon`` periods as per-user trajectories, observations from
  :func:`predictors.observations_from_panel` (what the policies see in the world too),
  ``pscore`` = the logged propensity, reward = the world's
  (:func:`agents.ope.accuracy_logs.accuracy_logged_data`, which says how the value, the users
  and the reward are defined).

The summary per estimator (:mod:`agents.ope.accuracy_summary`) scores median relative error,
Spearman rank correlation, interval coverage and width; the selection gate is scored against
the true gains (:mod:`agents.ope.gate_bench`).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from tqdm import tqdm

from agents.ope.accuracy_logs import (
    accuracy_logged_data,
    load_target_policy,
    logged_revenue,
    reward_check,
    true_value,
    with_reward,
)
from agents.ope.accuracy_summary import GOAL, summarize
from agents.ope.choice import CHOICE_METHODS, choose_estimator
from agents.ope.data import LoggedData, target_action_dist
from agents.ope.fqe import FQEConfig
from agents.ope.marginal import MARGINAL_ESTIMATORS, MarginalConfig, joint_replicates
from agents.ope.model_based import SIM_ESTIMATORS
from agents.ope.sequential import FQE, PDIS, WPDIS, SequentialDR, SequentialEstimator
from agents.ope.tree_fqe import TreeFQE, TreeQConfig
from agents.policy import Policy
from predictors import (
    ConfigError,
    GenerateConfig,
    StartStates,
    check_choice,
    check_int,
    check_number,
    generate,
    open_dataset,
    read_start_states,
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
ACCURACY_ESTIMATORS = (("pdis", "wpdis", "seq-dr", "fqe", "fqe-hgb") + MARGINAL_ESTIMATORS
                       + SIM_ESTIMATORS + ("sim-tdr",))
#: The benchmark's default estimators: the MLP-based ``seq-dr`` and ``fqe`` (intervals
#: conditional on their Q model, minutes per policy at long horizons) and the boosted-tree
#: ``fqe-hgb`` (five Q fits per policy) are opt-in.
DEFAULT_ESTIMATORS = ("pdis", "wpdis") + MARGINAL_ESTIMATORS


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
        sim_calibration: ``none`` or ``rollout``: the per-period rollout calibration of the
            simulator's predictor (:mod:`agents.ope.sim_models`).
        sim_members: Extra simulators fitted on random halves of the users; with them the
            ``sim`` / ``sim-dr`` intervals add the models' spread (``kind="members"``,
            :func:`agents.ope.sim_models.member_interval`); 0: the simulator held fixed.
        q_shrinkage: ``shrinkage`` of the marginal estimators' linear Q
            (:class:`agents.ope.marginal.MarginalConfig`).
        ridge: Their ridge penalty ``alpha``.
        choice: Also score the data-driven choice among the estimators
            (:func:`agents.ope.choice.choose_estimator`) as the rows ``chosen`` (SLOPE-type
            rule) and ``chosen-mse`` (smallest estimated MSE).

    Example:
        >>> AccuracyConfig(n_users=300, n_periods=6, horizon=3).estimators
        ('pdis', 'wpdis', 'fqe-lin', 'mis', 'mdr', 'dr-lin', 'wdr-lin')
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
    sim_calibration: str = "none"
    sim_members: int = 0
    choice: bool = True
    q_shrinkage: float = 1.0
    ridge: float = 1.0

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
            raise ConfigError(str(e)) from None  # names the preset or file
        check_int(self, "n_boot", ge=2)
        check_number(self, "alpha", gt=0, lt=1)
        check_number(self, "q_shrinkage", ge=0)
        check_number(self, "ridge", gt=0)
        from agents.ope.sim_models import SimModelConfig

        try:
            SimModelConfig(family=self.sim_family, calibration=self.sim_calibration,
                           members=self.sim_members)
        except ConfigError as e:
            raise ConfigError(str(e).replace("`", "`sim_", 1)) from None
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
            "fqe": lambda: FQE(q_model=q),
            "fqe-hgb": lambda: TreeFQE(tree=TreeQConfig(seed=seed))}
    return [make[n]() for n in names if n in make]


def _one_dataset(folder: Path, config: AccuracyConfig, policies: Sequence[str],
                 seed: int) -> dict[str, Any]:
    """Truth and estimates of every policy on one generated dataset."""
    spec = open_dataset(folder).spec
    world, start = read_world(folder), read_start_states(folder, "start")
    revenue, users = logged_revenue(folder, config.horizon)
    data = with_reward(revenue, spec, start, "world")
    panel_data = with_reward(revenue, spec, start, "panel")
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
                row["estimates"][est.name] = _estimate_cell(iv, truth, time.perf_counter() - t0)
        notes.update(f"{text}: {w.message}" for w in caught)
        rows.append(row)
    marginal = [e for e in config.estimators if e in MARGINAL_ESTIMATORS]
    gate: list[dict[str, Any]] = []
    if marginal:
        t0 = time.perf_counter()
        rep = joint_replicates(data, dists, _marginal_config(config), n_boot=config.n_boot,
                               seed=seed, estimators=marginal)
        seconds = (time.perf_counter() - t0) / len(rows)
        for row in rows:
            truth = row["true_value"]
            for name in marginal:
                iv = rep.interval(name, row["policy"], config.alpha)
                row["estimates"][name] = _estimate_cell(iv, truth, seconds)
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


def _marginal_config(config: AccuracyConfig) -> MarginalConfig:
    return MarginalConfig(alpha=config.ridge, shrinkage=config.q_shrinkage)


def _estimate_cell(iv: Any, truth: float, seconds: float) -> dict[str, Any]:
    return {"mean": iv.mean, "low": iv.low, "high": iv.high, "kind": iv.kind,
            "rel_error": abs(iv.mean - truth) / abs(truth) if truth else float("nan"),
            "covers": bool(iv.low <= truth <= iv.high), "seconds": seconds}


def _add_sim_estimates(folder: Path, config: AccuracyConfig, data: LoggedData,
                       users: np.ndarray, start: StartStates, policies: dict[str, Policy],
                       rows: list[dict[str, Any]], seed: int) -> dict[str, float]:
    """``sim`` / ``sim-dr`` of every policy from simulators fitted on the dataset's panel
    (all its periods and users; :func:`agents.ope.sim_models.sim_estimates`); the users
    start from their observable pre-log history."""
    from agents.ope.sim_models import TRUNCATED, SimModelConfig, sim_estimates

    names = tuple(e for e in config.estimators if e in (*SIM_ESTIMATORS, TRUNCATED))
    if not names:
        return {}

    model = SimModelConfig(family=config.sim_family, calibration=config.sim_calibration,
                           members=config.sim_members, seed=seed)
    ivs, seconds, steps = sim_estimates(folder, data, users, start.history.subset(users), policies,
                                 config.horizon, names, model,
                                 replicates=config.sim_replicates, alpha=config.alpha,
                                 n_boot=config.n_boot, seed=seed)
    for row in rows:
        for e in names:
            row["estimates"][e] = _estimate_cell(ivs[row["policy"]][e], row["true_value"],
                                                 seconds["rollouts_and_intervals"] / len(rows))
        if TRUNCATED in names:
            row["estimates"][TRUNCATED]["steps"] = steps[row["policy"]]
    return seconds


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
            joint_replicates(data, dists, _marginal_config(config), n_boot=config.n_boot,
                             seed=config.seed, estimators=marginal)
            seconds[" + ".join(marginal) + " (joint, refit)"] = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    return {"n_users": len(users), "n_rounds": data.n_rounds, "data_seconds": data_s,
            "seconds": seconds, "total_seconds": float(sum(seconds.values())),
            "marginal_cpu_seconds": cpu}
