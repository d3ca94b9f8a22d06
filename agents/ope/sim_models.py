"""The simulators behind ``sim`` / ``sim-dr``: fitting options, and intervals with model spread.

:func:`fit_sim_models` fits the learned simulator of the model-based estimators
(:mod:`agents.ope.model_based`) on a dataset's panel: a predictor ``family``, optionally with
the per-period rollout calibration (:func:`envs.rollout_calibration.fit_rollout_calibration`,
fitted on the predictor's validation users by replaying their logged actions), and optionally
``members`` more simulators, each fitted the same way on a random half of the users.

**Intervals with model uncertainty** (:func:`member_interval`, ``kind="members"``). The user
bootstrap of :func:`agents.ope.model_based.sim_interval` holds the simulator fixed: it omits
how much the estimate would move had the simulator been fitted on other users. The members
measure that: the spread of their estimates (all on the same logged users) is the fitting
variance of a model fitted on half the users; for an estimate that is a smooth function of
the fitted model, the variance of the full-data estimate around its limit is about
``f / (1 - f)`` times the variance between half-sample fits (``f = 1/2``: the same), the
half-sampling form of the ``m``-out-of-``n`` bootstrap (Politis, Romano & Wolf,
"Subsampling", Springer 1999). With the user bootstrap's variance ``v_b`` (data noise, model
fixed) and the members' ``v_m = var_k(m_k) f / (1 - f)``, the interval is

``m_0 +- t_df sqrt(v_b + v_m)``, ``df = (K - 1) (v_b + v_m)^2 / v_m^2``

(Welch-Satterthwaite degrees of freedom with ``K`` members; ``m_0`` is the full-data model's
estimate). It adds the model's variance, not its bias: a simulator that is wrong in the same
way on every half (an action the logs never show for long) stays wrong, and only the DR
correction or the truth can tell.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from agents.ope.base import Interval
from agents.ope.data import LoggedData
from agents.ope.model_based import SimulatorConfig, SimulatorValues
from agents.policy import Policy
from envs.simulator import ShopSimulator
from predictors import ConfigError, DatasetSpec, check_choice, check_int

__all__ = ["SIM_CALIBRATIONS", "TRUNCATED", "SimModelConfig", "SimModels", "fit_sim_models",
           "member_interval", "sim_estimates", "truncation_steps"]

#: Calibrations of the simulator's predictor: none, or the per-period rollout calibration.
SIM_CALIBRATIONS = ("none", "rollout")
#: The truncated DR estimator: ``sim-dr`` with its number of corrections chosen from the data.
TRUNCATED = "sim-tdr"
#: Share of the users each member is fitted on.
MEMBER_FRACTION = 0.5


@dataclass(frozen=True)
class SimModelConfig:
    """How the simulator of the model-based estimators is fitted.

    Attributes:
        family: Predictor family (:data:`predictors.models.config.FAMILIES`).
        calibration: ``none`` or ``rollout`` (per-period offsets fitted on the predictor's
            validation users; needs at least 3 logged periods).
        members: Extra simulators fitted on random halves of the users, for the intervals'
            model spread (:func:`member_interval`); 0: none, else at least 2.
        seed: Seed of the predictors, the halves and the calibration's rollouts.
        threads: Torch threads while fitting.

    Example:
        >>> SimModelConfig(family="gru", calibration="rollout", members=3).members
        3
    """

    family: str = "markov"
    calibration: str = "none"
    members: int = 0
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        from predictors.models.config import FAMILIES

        check_choice(self, "family", FAMILIES)
        check_choice(self, "calibration", SIM_CALIBRATIONS)
        check_int(self, "members", ge=0)
        check_int(self, "threads", ge=1)
        if self.members == 1:
            raise ConfigError("`members` must be 0 or at least 2 (one member has no spread); "
                              "got 1")


@dataclass(frozen=True)
class SimModels:
    """The fitted simulators.

    Attributes:
        main: Fitted on every user (the estimate).
        members: Fitted on random halves of the users (the model spread); may be empty.
        seconds: Fitting time: ``predictor`` and ``calibration`` (all simulators together).
    """

    main: ShopSimulator
    members: list[ShopSimulator] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _fit_one(folder: Path, panel: pd.DataFrame, spec: DatasetSpec, users: pd.DataFrame | None,
             config: SimModelConfig, seed: int, seconds: dict[str, float]) -> ShopSimulator:
    from agents.ope.model_based import fit_simulator

    t0 = time.perf_counter()
    sim = fit_simulator(panel, spec, users, family=config.family, seed=seed,
                        threads=config.threads)
    seconds["predictor"] += time.perf_counter() - t0
    if config.calibration == "rollout":
        from envs.rollout_calibration import RolloutCalibrationConfig, fit_rollout_calibration

        t0 = time.perf_counter()
        cal, _ = fit_rollout_calibration(sim.predictor, folder,
                                         RolloutCalibrationConfig(seed=seed), panel=panel)
        sim.predictor.rollout_calibration_ = cal
        seconds["calibration"] += time.perf_counter() - t0
    return sim


def fit_sim_models(folder: str | Path, panel: pd.DataFrame, spec: DatasetSpec,
                   users: pd.DataFrame | None = None,
                   config: SimModelConfig | None = None) -> SimModels:
    """Fit the main simulator on all of ``panel`` and ``config.members`` on random halves.

    Args:
        folder: The dataset folder ``panel`` comes from (the rollout calibration reads it).
        panel: The dataset's panel (all periods and users the simulators learn from).
        spec: Its catalog.
        users: Its users table (static features), or ``None``.
        config: Options.

    Returns:
        The fitted simulators; member ``k`` uses the users drawn by
        ``np.random.default_rng([seed, 2, k])`` and predictor seed ``seed + 1 + k``.
    """
    config = config or SimModelConfig()
    folder = Path(folder)
    seconds = {"predictor": 0.0, "calibration": 0.0}
    main = _fit_one(folder, panel, spec, users, config, config.seed, seconds)
    ids = np.sort(panel["user_id"].unique())
    members = []
    for k in range(config.members):
        rng = np.random.default_rng([config.seed, 2, k])
        half = rng.choice(ids, size=max(1, int(round(MEMBER_FRACTION * len(ids)))),
                          replace=False)
        part = panel[panel["user_id"].isin(half).to_numpy()].reset_index(drop=True)
        table = (None if users is None
                 else users[users["user_id"].isin(half).to_numpy()].reset_index(drop=True))
        members.append(_fit_one(folder, part, spec, table, config, config.seed + 1 + k,
                                seconds))
    return SimModels(main, members, seconds)


def member_interval(mean: float, boot: np.ndarray, member_means: np.ndarray,
                    alpha: float = 0.05, fraction: float = MEMBER_FRACTION) -> Interval:
    """The interval ``mean +- t_df sqrt(v_b + v_m)`` of the module docstring.

    Args:
        mean: The main simulator's estimate.
        boot: ``(n_boot,)`` its user-bootstrap replicates (model fixed).
        member_means: ``(K,)`` the members' estimates on the same data, ``K >= 2``.
        alpha: One minus the coverage.
        fraction: Share of the users each member was fitted on.

    Raises:
        ValueError: Fewer than two members or fewer than two bootstrap replicates.

    Example:
        >>> iv = member_interval(10.0, np.array([9.0, 11.0]), np.array([8.0, 12.0]))
        >>> iv.kind, iv.low < 8.0 < 12.0 < iv.high
        ('members', True)
    """
    member_means = np.asarray(member_means, dtype=np.float64)
    boot = np.asarray(boot, dtype=np.float64)
    if member_means.ndim != 1 or len(member_means) < 2:
        raise ValueError(f"`member_means` must hold at least 2 estimates; got shape "
                         f"{member_means.shape}")
    if boot.ndim != 1 or len(boot) < 2:
        raise ValueError(f"`boot` must hold at least 2 replicates; got shape {boot.shape}")
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1); got {fraction!r}")
    v_b = float(np.var(boot, ddof=1))
    v_m = float(np.var(member_means, ddof=1)) * fraction / (1 - fraction)
    total = v_b + v_m
    if v_m > 0:
        df = (len(member_means) - 1) * total**2 / v_m**2
        q = float(student_t.ppf(1 - alpha / 2, df))
    else:
        q = float(student_t.ppf(1 - alpha / 2, np.inf))
    half = q * np.sqrt(total)
    return Interval(float(mean), float(mean - half), float(mean + half), kind="members")


def sim_estimates(folder: str | Path, data: LoggedData, users: np.ndarray, history: Any,
                  policies: Mapping[str, Policy], horizon: int, estimators: Sequence[str],
                  config: SimModelConfig | None = None, *, replicates: int = 1,
                  alpha: float = 0.05, n_boot: int = 200, seed: int = 0,
                  ) -> tuple[dict[str, dict[str, Interval]], dict[str, float], dict[str, int]]:
    """``sim`` / ``sim-dr`` of every policy from simulators fitted on a dataset's whole panel.

    Args:
        folder: A dataset folder; the simulators learn from all its periods and users.
        data: Its logged trajectories of the first ``horizon`` periods (the evaluated users).
        users: The evaluated users' ids, in the order of ``np.unique(data.user_id)``.
        history: Their observable history before the log (a :class:`HistoryTracker`).
        policies: Name -> target policy.
        horizon: Periods evaluated.
        estimators: Subset of :data:`agents.ope.model_based.SIM_ESTIMATORS`.
        config: How the simulators are fitted; with members, each interval is
            :func:`member_interval`'s (``kind="members"``), else the user bootstrap with the
            simulator fixed (``kind="conditional"``).
        replicates: Rollouts per logged state and first action.
        alpha: One minus the coverage.
        n_boot: User-bootstrap replicates.
        seed: Seed of the rollouts and the bootstrap.

    Returns:
        Policy -> estimator -> interval; seconds spent (``fit``, ``calibration``,
        ``rollouts_and_intervals``); policy -> the corrections ``L`` of ``sim-tdr`` (empty
        when it was not asked for).
    """
    from agents.ope.model_based import encoded_static, sim_replicates, simulator_values
    from predictors import build_panel, load_users, open_dataset

    config = config or SimModelConfig()
    ds = open_dataset(folder)
    panel = build_panel(ds, validate=False)
    table = load_users(ds, validate=False)
    models = fit_sim_models(folder, panel, ds.spec, table, config)
    t0 = time.perf_counter()
    sim_cfg = SimulatorConfig(replicates=replicates, seed=seed)
    logged = panel[panel["period"] < horizon]
    dr = "sim-dr" in estimators or TRUNCATED in estimators

    def values(sim: ShopSimulator) -> dict:
        return simulator_values(sim, data, logged, policies, sim_cfg, history=history,
                                static=encoded_static(sim, table, users), dr=dr)

    main = values(models.main)
    member_values = [values(m) for m in models.members]
    out: dict[str, dict[str, Interval]] = {}
    chosen: dict[str, int] = {}
    for name in policies:
        out[name] = {}
        for e in estimators:
            steps = None
            if e == TRUNCATED:
                steps = chosen[name] = truncation_steps(data, main[name], sim_cfg, alpha=alpha,
                                                        n_boot=n_boot, seed=seed)
            base = "sim-dr" if e == TRUNCATED else e
            mean, boot = sim_replicates(data, main[name], base, sim_cfg, n_boot=n_boot,
                                        seed=seed, dr_steps=steps)
            if member_values:
                means = np.array([sim_replicates(data, mv[name], base, sim_cfg, n_boot=2,
                                                 seed=seed, dr_steps=steps)[0]
                                  for mv in member_values])
                out[name][e] = member_interval(mean, boot, means, alpha)
            else:
                low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
                out[name][e] = Interval(mean, float(low), float(high), kind="conditional")
    seconds = {"fit": models.seconds["predictor"],
               "calibration": models.seconds["calibration"],
               "rollouts_and_intervals": time.perf_counter() - t0}
    return out, seconds, chosen


def truncation_steps(data: LoggedData, values: SimulatorValues,
                     config: SimulatorConfig | None = None, *, alpha: float = 0.05,
                     n_boot: int = 200, seed: int = 0) -> int:
    """The number of DR corrections ``L`` of ``sim-tdr``, chosen from the data (module doc).

    The truncated estimates ``L = 0 .. horizon`` (:func:`agents.ope.model_based.
    sim_replicates`) with their user-bootstrap intervals go to the SLOPE-type rule of
    :func:`agents.ope.choice.choose_estimator`: from the widest interval, the narrowest one
    that overlaps every wider one.
    """
    from agents.ope.choice import choose_estimator
    from agents.ope.model_based import sim_replicates

    horizon = data.trajectories().horizon
    ivs = {}
    for steps in range(horizon + 1):
        mean, boot = sim_replicates(data, values, "sim-dr", config, n_boot=n_boot, seed=seed,
                                    dr_steps=steps)
        low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        ivs[f"L={steps}"] = Interval(mean, float(low), float(high), kind="conditional")
    return int(choose_estimator(ivs, "slope").estimator[2:])
