"""Model-based OPE from the learned simulator, and its doubly robust correction.

The learned shop (:class:`envs.simulator.ShopSimulator`) is itself an estimator of a target
policy's value: start it from the logged users and let the policy act. Here it supplies the
value functions of a sequential DR estimator, evaluated at the LOGGED states:

1. **Replay.** The logged users' periods are fed to the simulator one at a time
   (:meth:`ShopSimulator.observe`), so before step ``t`` its state for user ``i`` is the
   predictor's state after the user's logged history: the logged state ``s_it``.
2. **Rollouts.** From ``s_it`` the simulator runs ``replicates`` rollouts with the first action
   drawn from ``pi(. | s_it)`` (the policy's probabilities on the logged observation) and then
   the policy, to the end of the user's trajectory (or ``rollout_horizon`` periods): the mean
   of their summed expected rewards is ``V(s_it)``; the same with the first action forced to
   the logged ``a_it`` gives ``Q(s_it, a_it)`` (when ``pi(a_it | s_it) = 1`` the two coincide
   and one rollout serves both). Rollouts are needed only where their DR term has weight: a
   user whose cumulative weight ``rho_i,t-1`` is 0 needs none at ``t`` (deterministic rules
   drop most users within a few periods, so the cost shrinks with the horizon).
3. **Estimators** (per user, then averaged; ``gamma`` discounts):

   * ``sim``: ``V = mean_i V(s_i0)`` (the direct method: the simulator's own value of the
     policy from the logged start states).
   * ``sim-dr``: Jiang & Li's per-decision DR with the simulator's ``Q``/``V``,
     ``V = sum_t gamma^t [sum_i rho_it (r_it - Q(s_it, a_it)) / sum_i rho_it
     + sum_i rho_i,t-1 V(s_it) / sum_i rho_i,t-1]``, self-normalised per step (the weighted DR
     of Thomas & Brunskill, "Data-efficient off-policy policy evaluation for reinforcement
     learning", ICML 2016); ``self_normalize=False`` gives the plain mean over users. The
     weights are the exact ``rho_it = prod_u pi(a_iu | s_iu) / p_iu``, optionally capped at
     ``max_weight``. With the logged propensities right, the correction removes the model's
     bias in expectation whatever the model; with the model exact, it adds only noise.

**Intervals** (``kind="conditional"``): users are resampled with the simulator, its Q/V
rollouts and their Monte-Carlo noise held FIXED (refitting the predictor per resample is far
too slow); they omit the model's own uncertainty, which matters for ``sim`` (its interval is
only the spread of the start users) and little for ``sim-dr`` (the correction is unbiased).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agents.ope.base import Interval, weighted_bootstrap
from agents.ope.data import LoggedData, target_action_dist
from agents.policy import Policy
from envs.simulator import RAW_COLUMNS, ShopSimulator, StartStates
from predictors import DatasetSpec, HistoryTracker, check_int, check_number

__all__ = ["SIM_ESTIMATORS", "SimulatorConfig", "SimulatorValues", "encoded_static",
           "fit_simulator", "sim_interval", "sim_replicates", "simulator_values"]

#: Estimators of this module.
SIM_ESTIMATORS = ("sim", "sim-dr")


@dataclass(frozen=True)
class SimulatorConfig:
    """Options of the simulator estimators.

    Attributes:
        replicates: Rollouts per logged state and first action (their mean is ``V`` / ``Q``).
        rollout_horizon: Periods a rollout runs at most (``None``: to the end of the user's
            trajectory). A cap bounds the cost; DR stays unbiased but carries the tail's
            value in weighted terms (``sim`` always rolls from ``t = 0`` to the end).
        gamma: Discount factor in ``[0, 1]``.
        self_normalize: Normalise ``sim-dr``'s weighted terms by the weights' sum per step.
        max_weight: Cap of the cumulative weights ``rho`` (``None``: none).
        seed: Seed of the rollouts.
    """

    replicates: int = 1
    rollout_horizon: int | None = None
    gamma: float = 1.0
    self_normalize: bool = True
    max_weight: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self, "replicates", ge=1)
        check_int(self, "rollout_horizon", ge=1, optional=True)
        check_number(self, "gamma", ge=0, le=1)
        check_number(self, "max_weight", gt=0, optional=True)


@dataclass(frozen=True)
class SimulatorValues:
    """The simulator's value functions of one policy on the logged rows.

    Attributes:
        q: ``(n_rounds,)`` ``Q(s, a_logged)`` (0 where its DR weight is 0).
        v: ``(n_rounds,)`` ``V(s)`` (0 where its DR weight is 0; always set at a user's
            first step).
        dist: ``(n_rounds, n_actions)`` the policy's probabilities on the logged rows.
        user_steps: Simulated user-periods spent.
    """

    q: np.ndarray
    v: np.ndarray
    dist: np.ndarray
    user_steps: int


def _replay_grid(data: LoggedData, panel: pd.DataFrame) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray, np.ndarray]:
    """Users, the trajectories' row index ``(N, H)`` and the logged ``raw`` ``(N, H, 7)``
    and actions ``(N, H)`` of every step, checked against the panel."""
    traj = data.trajectories()
    index, alive = traj.index, traj.alive
    rows = np.maximum(index, 0)
    users = np.asarray(data.user_id)[rows[:, 0]]
    period = np.asarray(data.time_step)[rows]
    missing = [c for c in ("user_id", "period", "action_index", *RAW_COLUMNS)
               if c not in panel.columns]
    if missing:
        raise ValueError(f"`panel` lacks column(s) {missing}")
    gap = alive[:, 1:] & (np.diff(period, axis=1) != 1)
    if gap.any():
        i = int(np.flatnonzero(gap.any(axis=1))[0])
        raise ValueError(f"the simulator estimators need each user's logged periods to be "
                         f"consecutive; user {users[i]!r} has a gap")
    first = pd.Series(period[:, 0], index=users)
    earlier = panel["period"].to_numpy() < panel["user_id"].map(first).to_numpy()
    if earlier.any():
        j = int(np.flatnonzero(earlier)[0])
        raise ValueError(f"the simulator estimators replay each user from the first logged "
                         f"period; panel row {j} (user {panel['user_id'].iloc[j]!r}, period "
                         f"{panel['period'].iloc[j]}) comes before it")
    keyed = panel.set_index(["user_id", "period"])
    key = pd.MultiIndex.from_arrays([np.repeat(users, index.shape[1]), period.ravel()])
    found = keyed.reindex(key)
    raw = found[list(RAW_COLUMNS)].to_numpy(np.float32).reshape(*index.shape, -1)
    action = data.action[rows]
    lost = alive & np.isnan(raw).any(axis=2)
    if lost.any():
        i, t = (int(x[0]) for x in np.nonzero(lost))
        raise ValueError(f"`panel` has no row for user {users[i]!r}, period {period[i, t]}")
    return users, index, np.nan_to_num(raw), action


def _rollout_returns(sim: ShopSimulator, starts: StartStates, src: np.ndarray,
                     first: np.ndarray, steps: np.ndarray, policy: Policy, gamma: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Discounted sum of expected rewards of rollouts from ``starts`` users ``src``: first
    action ``first``, then ``policy``, for ``steps`` periods each."""
    roll = sim.clone()
    roll.load(starts, src)
    total = np.zeros(len(src))
    live = np.ones(len(src), bool)
    action = first
    for k in range(int(steps.max())):
        live &= steps > k
        out = roll.step(action, rng)
        total += np.where(live, gamma**k * out["expected_reward"], 0.0)
        live &= ~out["terminated"]
        if k + 1 < steps.max():
            action = policy.act(roll.observation(), rng).astype(np.int64)
    return total


def _draw(dist: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row of ``dist`` ``(n, A)``."""
    u = rng.random(len(dist))[:, None]
    return np.minimum((np.cumsum(dist, axis=1) < u).sum(axis=1), dist.shape[1] - 1)


def simulator_values(sim: ShopSimulator, data: LoggedData, panel: pd.DataFrame,
                     policies: Mapping[str, Policy], config: SimulatorConfig | None = None, *,
                     history: HistoryTracker | None = None,
                     static: np.ndarray | None = None,
                     dr: bool = True) -> dict[str, SimulatorValues]:
    """``Q(s_it, a_it)`` and ``V(s_it)`` of every policy at the logged states (module doc).

    Args:
        sim: The learned simulator (its predictor and catalog; its own users are unused).
        data: Logged trajectories (``user_id``, ``time_step`` = period, ``obs``); each user's
            logged periods consecutive from the first panel period of the user.
        panel: The panel the rows come from (``user_id``, ``period``, ``action_index`` and
            the raw columns of :data:`envs.simulator.RAW_COLUMNS`).
        policies: Name -> target policy (it acts on the simulator's observations, which match
            ``data.obs`` when both are built with the same features).
        config: Options.
        history: Observable history of the users (one row per user in the order of
            ``np.unique(data.user_id)``) before their first logged period, e.g. a shop's
            pre-log history; fresh if omitted.
        static: ``(N, k)`` encoded static features for the predictor's initial state
            (``predictor.encoder_.transform``), zeros if omitted.
        dr: Also the values ``sim-dr`` needs; ``False``: only ``V`` at each user's first
            step (all ``sim`` needs; ``q`` is then 0 everywhere).

    Returns:
        Name -> :class:`SimulatorValues`.
    """
    config = config or SimulatorConfig()
    users, index, raw, action = _replay_grid(data, panel)
    n, horizon = index.shape
    alive = index >= 0
    length = alive.sum(axis=1)
    rows = np.maximum(index, 0)
    tracker = history.copy() if history is not None else HistoryTracker(n, sim.spec,
                                                                        sim.feature_config)
    if tracker.n != n:
        raise ValueError(f"`history` holds {tracker.n} users; the data has {n}")
    pred = sim.predictor
    state = pred.initial_state(n, static)
    window = 8
    base = StartStates(users, 0, tracker, state, np.zeros((n, 0), np.float32),
                       np.zeros((n, 2), bool), np.full(n, 10_000, np.int64),
                       np.zeros((n, window), bool))
    replay = sim.clone()
    replay.load(base, np.arange(n))
    dists = {name: target_action_dist(p, data) for name, p in policies.items()}
    out = {name: [np.zeros(data.n_rounds), np.zeros(data.n_rounds), 0] for name in dists}
    rhos = {}
    for name, dist in dists.items():
        w = np.where(alive, dist[rows, action] / data.pscore[rows], 0.0)
        rhos[name] = np.hstack([np.ones((n, 1)), np.cumprod(w, axis=1)[:, :-1]])
    rng = np.random.default_rng(config.seed)
    k = config.replicates
    for t in range(horizon if dr else 1):
        snap = StartStates(users, t, replay.tracker, replay.state, replay.static,
                           replay.unsub, replay.since_coupon, replay.contacts)
        for name, policy in policies.items():
            dist = dists[name]
            need = np.flatnonzero(alive[:, t] & (rhos[name][:, t] > 0))
            if len(need) == 0:
                continue
            r = rows[need, t]
            steps = length[need] - t
            if t > 0 and config.rollout_horizon is not None:
                steps = np.minimum(steps, config.rollout_horizon)
            p_logged = dist[r, action[need, t]]
            own = (p_logged > 0) & (p_logged < 1) & dr  # Q(s, a_logged): its own rollouts
            src = np.concatenate([np.tile(need, k), np.tile(need[own], k)])
            first = np.concatenate([_draw(np.tile(dist[r], (k, 1)), rng),
                                    np.tile(action[need[own], t], k)]).astype(np.int64)
            st = np.concatenate([np.tile(steps, k), np.tile(steps[own], k)])
            ret = _rollout_returns(sim, snap, src, first, st, policy, config.gamma, rng)
            v = ret[:len(need) * k].reshape(k, -1).mean(axis=0)
            q = np.where((p_logged >= 1) & dr, v, 0.0)
            if own.any():
                q[own] = ret[len(need) * k:].reshape(k, -1).mean(axis=0)
            out[name][0][r] = q
            out[name][1][r] = v
            out[name][2] += int(st.sum())
        replay.observe(np.where(alive[:, t], action[:, t], 0), raw[:, t])
    return {name: SimulatorValues(q=o[0], v=o[1], dist=dists[name], user_steps=o[2])
            for name, o in out.items()}


def _user_terms(data: LoggedData, values: SimulatorValues, estimator: str,
                config: SimulatorConfig, dr_steps: int | None = None
                ) -> tuple[np.ndarray, int]:
    """Per-user terms (values then normalisers) and the number of value columns; ``sim-dr``
    truncated after ``dr_steps`` corrections when given."""
    traj = data.trajectories()
    alive = traj.alive
    rows = np.maximum(traj.index, 0)
    disc = config.gamma ** np.arange(traj.horizon)
    v = np.where(alive, values.v[rows], 0.0)
    if estimator == "sim":
        return np.column_stack([v[:, 0], np.ones(len(v))]), 1
    w = np.where(alive, values.dist[rows, data.action[rows]] / data.pscore[rows], 1.0)
    rho = np.cumprod(w, axis=1)
    if config.max_weight is not None:
        rho = np.minimum(rho, config.max_weight)
    rho *= alive
    rho_prev = np.hstack([np.ones((len(rho), 1)), rho[:, :-1]]) * alive
    resid = np.where(alive, data.reward[rows] - values.q[rows], 0.0)
    vals = np.hstack([disc * rho * resid, disc * rho_prev * v])
    if config.self_normalize:
        norm = np.hstack([rho, rho_prev])
    else:
        norm = np.ones_like(vals)
    if dr_steps is not None:  # corrections t < L, then the model's V(s_L): drop the rest
        t = np.arange(traj.horizon)
        drop = np.concatenate([t >= dr_steps, t > dr_steps])
        vals[:, drop] = 0.0
        norm[:, drop] = 0.0
    return np.hstack([vals, norm]), vals.shape[1]


def _combine(h: int):  # noqa: ANN202 - a closure for weighted_bootstrap
    """Sum over the ``h`` value columns of value / normaliser (0 where nothing is left)."""

    def combine(sums: np.ndarray, count: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = sums[:, :h] / sums[:, h:]
        return np.where(sums[:, h:] > 0, ratio, 0.0).sum(axis=1)
    return combine


def sim_interval(data: LoggedData, values: SimulatorValues, estimator: str = "sim-dr",
                 config: SimulatorConfig | None = None, *, alpha: float = 0.05,
                 n_boot: int = 200, seed: int = 0) -> Interval:
    """``sim`` or ``sim-dr`` of one policy with a user-bootstrap interval, the simulator's
    values held fixed (``kind="conditional"``).

    Args:
        data: The logged trajectories :func:`simulator_values` was run on.
        values: Its output for the policy.
        estimator: ``sim`` or ``sim-dr``.
        config: Options (``gamma``, ``self_normalize``, ``max_weight``).
        alpha: One minus the coverage.
        n_boot: Bootstrap replicates (Poisson(1) user weights).
        seed: Seed of the weights.
    """
    mean, boot = sim_replicates(data, values, estimator, config, n_boot=n_boot, seed=seed)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return Interval(mean, float(low), float(high), kind="conditional")


def sim_replicates(data: LoggedData, values: SimulatorValues, estimator: str = "sim-dr",
                   config: SimulatorConfig | None = None, *, n_boot: int = 200,
                   seed: int = 0, dr_steps: int | None = None) -> tuple[float, np.ndarray]:
    """The estimate and its ``(n_boot,)`` user-bootstrap replicates, the simulator's values
    held fixed (arguments as :func:`sim_interval`).

    ``dr_steps`` (``sim-dr`` only) truncates the correction: the first ``L = dr_steps``
    per-decision corrections, then the simulator's ``V(s_L)`` weighted by ``rho_i,L-1``
    (``L = 0`` is ``sim``; ``L >= horizon`` the full ``sim-dr``)."""
    config = config or SimulatorConfig()
    if estimator not in SIM_ESTIMATORS:
        raise ValueError(f"`estimator` must be one of {SIM_ESTIMATORS}; got {estimator!r}")
    if len(values.q) != data.n_rounds:
        raise ValueError(f"`values` hold {len(values.q)} rows; the data has {data.n_rounds}")
    if dr_steps is not None and (estimator != "sim-dr" or int(dr_steps) < 0):
        raise ValueError(f"`dr_steps` must be an integer >= 0 and needs estimator 'sim-dr'; "
                         f"got {dr_steps!r} with {estimator!r}")
    terms, h = _user_terms(data, values, estimator, config, dr_steps)
    combine = _combine(h)
    n = np.array([float(len(terms))])
    mean = float(combine(terms.sum(axis=0)[None, :], n)[0])
    return mean, weighted_bootstrap(terms, combine, n_boot, seed, scheme="poisson")


def fit_simulator(panel: pd.DataFrame, spec: DatasetSpec, users: pd.DataFrame | None = None,
                  *, family: str = "markov", seed: int = 0, threads: int = 1,
                  ) -> ShopSimulator:
    """A learned simulator fitted on ``panel`` for the simulator estimators.

    The predictor (:class:`predictors.models.BehaviorPredictor`, ``family``; ``markov`` is
    counted in seconds, the recurrent ones train for minutes) is fitted on the panel's
    training users with its default split; its simulator steps every user.
    """
    from envs.simulator import ActivityModel
    from predictors.models import BehaviorPredictor, PredictorConfig

    pred = BehaviorPredictor(PredictorConfig(family=family, seed=seed, num_threads=threads))
    pred.fit(panel, spec.action_names, users, progress=False)
    return ShopSimulator(pred, spec, ActivityModel.fit(panel))


def encoded_static(sim: ShopSimulator, users: pd.DataFrame | None,
                   user_ids: np.ndarray) -> np.ndarray | None:
    """The predictor's encoded static features of ``user_ids`` (``None`` if it has none)."""
    enc = sim.predictor.encoder_
    if users is None or enc.n_features == 0:
        return None
    return np.asarray(enc.transform(users, user_ids), np.float32)


def simulator_intervals(sim: ShopSimulator, data: LoggedData, panel: pd.DataFrame,
                        policies: Mapping[str, Policy], config: SimulatorConfig | None = None,
                        *, estimators: tuple[str, ...] = SIM_ESTIMATORS,
                        history: HistoryTracker | None = None, static: np.ndarray | None = None,
                        alpha: float = 0.05, n_boot: int = 200, seed: int = 0,
                        ) -> dict[str, dict[str, Interval]]:
    """Policy name -> estimator name -> interval, for ``sim`` / ``sim-dr`` of every policy
    (:func:`simulator_values` once, then :func:`sim_interval`; arguments as there)."""
    values = simulator_values(sim, data, panel, policies, config, history=history,
                              static=static, dr="sim-dr" in estimators)
    return {name: {e: sim_interval(data, v, e, config, alpha=alpha, n_boot=n_boot, seed=seed)
                   for e in estimators} for name, v in values.items()}
