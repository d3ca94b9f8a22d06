"""Fit a per-period rollout calibration on validation users by replaying their logged actions.

The validation users of the predictor's split start where the log stood ``horizon`` periods
before its end (as the fidelity report's held-out users do); the learned shop replays the actions
the logging policy took for them, and at every rollout step records each simulated row's
predictions (before any rollout offset) for the action that acted. The offsets of
:class:`~predictors.models.rollout_calibration.RolloutCalibration` are then solved so that the
simulated expected visit, purchase and unsubscribe counts match the logged ones in every
direction of the step basis, and the simulated log revenue of a purchase matches the logged
one. Offsets change the rollout's later states, so this is repeated: roll out with the current
offsets, re-solve, move the offsets part of the way (``step_size``) to the solution (``rounds``
times; a full step overshoots, because lower simulated rates early lower the model's later
predictions too); the last rollout only measures the result.

The test users are never touched: check the calibrated shop on them with ``nudgegym fidelity``.
Because the offsets are fitted to the log under the LOGGING policy, they can correct the drift of
any rollout but also absorb effects that belong to the logged actions; the fidelity report's
rule values (on a synthetic shop) show whether other policies' values got better or worse.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from envs.fidelity import logged_window
from envs.shop_env import LearnedShop, load_learned_shop
from predictors import build_panel, check_int, check_number, open_dataset
from predictors.models import BehaviorPredictor
from predictors.models.rollout_calibration import (
    ROLLOUT_HEADS,
    RolloutCalibration,
    solve_mean_offsets,
    solve_rate_offsets,
)

_EPS = 1e-6
#: Fewer validation users than this get a warning (their logged rates are noisy).
MIN_USERS = 500


@dataclass(frozen=True)
class RolloutCalibrationConfig:
    """Options of :func:`fit_rollout_calibration`.

    Attributes:
        horizon: Rollout steps replayed (capped at the log's length minus one).
        degree: Degree of each head's polynomial in the rollout step (0: one constant offset).
        replicates: Simulated copies of each validation user.
        rounds: Fit-then-roll-out iterations.
        step_size: Fraction of the way each round moves the offsets to that round's solution.
        min_events: A head with fewer logged events in the window gets a constant offset.
        heads: Heads to correct (a subset of ``visit``, ``purchase``, ``revenue``,
            ``unsubscribe``); heads the data never shows are skipped.
        seed: Seed of the rollouts' draws.
    """

    horizon: int = 26
    degree: int = 1
    replicates: int = 8
    rounds: int = 6
    step_size: float = 0.5
    min_events: int = 50
    heads: tuple[str, ...] = ROLLOUT_HEADS
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self, "horizon", ge=2)
        check_int(self, "replicates", "rounds", ge=1)
        check_int(self, "min_events", ge=0)
        check_int(self, "degree", ge=0, le=3)
        check_number(self, "step_size", gt=0, le=1)
        bad = [h for h in self.heads if h not in ROLLOUT_HEADS]
        if bad or not self.heads:
            raise ValueError(f"`heads` must be a non-empty subset of {ROLLOUT_HEADS}; "
                             f"got {list(self.heads)!r}")


@dataclass
class _Record:
    """One rollout: per step, the acting rows' pre-offset predictions and the drawn means."""

    zv: list[np.ndarray] = field(default_factory=list)
    zp: list[np.ndarray] = field(default_factory=list)
    zu: list[np.ndarray] = field(default_factory=list)
    mu: list[np.ndarray] = field(default_factory=list)
    sent: list[np.ndarray] = field(default_factory=list)
    drawn: dict[str, list[float]] = field(default_factory=lambda: {
        "visit": [], "purchase": [], "revenue": [], "unsubscribe": []})


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _record_rollout(shop: LearnedShop, action: np.ndarray, horizon: int, replicates: int,
                    seed: int) -> _Record:
    sim = shop.simulator.clone()
    src = np.tile(np.arange(len(shop.starts)), replicates)
    sim.load(shop.starts, src)
    rng = np.random.default_rng(seed)
    rec, r = _Record(), np.arange(len(src))
    for t in range(horizon):
        a = action[src, t]
        pred = sim.predictor.predict_from_state(sim.state)
        action_cal = getattr(sim.predictor, "action_calibration_", None)
        if action_cal is not None:  # part of the model the rollout offsets go on top of
            pred = action_cal.apply(pred)
        eff, blocked = sim.effective_action(a)
        rec.zv.append(_logit(pred.p_visit[r, eff]))
        rec.zp.append(_logit(pred.p_purchase[r, eff]))
        rec.zu.append(_logit(pred.p_unsubscribe[r, eff]))
        rec.mu.append(pred.revenue_mu[r, eff])
        rec.sent.append(((sim.channel[a] >= 0) & ~blocked).astype(float))
        out = sim.step(a, rng)
        for k in rec.drawn:
            rec.drawn[k].append(float(np.mean(out[k])))
    return rec


def _targets(panel: pd.DataFrame, shop: LearnedShop, start: int, horizon: int) -> dict:
    log = logged_window(panel, shop.starts.user_ids, start, horizon)
    names = shop.spec.action_names
    action = log.action
    if (action < 0).any():
        action = np.where(action < 0, names.index("none") if "none" in names else 0, action)
    buy = log.purchase > 0
    logrev = np.where(buy & (log.revenue > 0), np.log(np.maximum(log.revenue, _EPS)), 0.0)
    n_rev = (buy & (log.revenue > 0)).sum(0)
    return {"action": action, "visit": log.visit.mean(0), "purchase": log.purchase.mean(0),
            "revenue": log.revenue.mean(0), "unsubscribe": log.unsubscribe.mean(0),
            "log_revenue": logrev.sum(0) / np.maximum(n_rev, 1), "n_revenue": n_rev,
            "events": {"visit": int(log.visit.sum()), "purchase": int(log.purchase.sum()),
                       "revenue": int(n_rev.sum()), "unsubscribe": int(log.unsubscribe.sum())},
            "n": len(shop.starts)}


def _solve(rec: _Record, tg: dict, cfg: RolloutCalibrationConfig, horizon: int,
           heads: list[str], activity: str) -> dict[str, tuple[float, ...]]:
    coef: dict[str, tuple[float, ...]] = {}
    n_log = np.full(horizon, float(tg["n"]))

    def degree(head: str) -> int:
        return cfg.degree if tg["events"][head] >= cfg.min_events else 0

    def pad(theta: np.ndarray) -> tuple[float, ...]:
        return tuple(float(x) for x in np.pad(theta, (0, cfg.degree + 1 - len(theta))))

    if "visit" in heads:
        coef["visit"] = pad(solve_rate_offsets(rec.zv, tg["visit"], n_log, degree("visit"),
                                               horizon))
    cal = RolloutCalibration(horizon, cfg.degree, dict(coef))
    steps = [np.full(len(z), t) for t, z in enumerate(rec.zv)]
    pv = [_sigmoid(z + cal.offsets("visit", s)) for z, s in zip(rec.zv, steps, strict=True)]
    if "purchase" in heads:
        cap = pv if activity == "visit" else None
        coef["purchase"] = pad(solve_rate_offsets(rec.zp, tg["purchase"], n_log,
                                                  degree("purchase"), horizon, cap=cap))
    if "unsubscribe" in heads:
        coef["unsubscribe"] = pad(solve_rate_offsets(rec.zu, tg["unsubscribe"], n_log,
                                                     degree("unsubscribe"), horizon,
                                                     mask=rec.sent))
    if "revenue" in heads:
        cal = RolloutCalibration(horizon, cfg.degree, dict(coef))
        gap = np.zeros(horizon)
        for t, s in enumerate(steps):
            pp = _sigmoid(rec.zp[t] + cal.offsets("purchase", s))
            if activity == "visit":
                pp = np.minimum(pp, pv[t])
            gap[t] = tg["log_revenue"][t] - (pp * rec.mu[t]).sum() / max(pp.sum(), _EPS)
        coef["revenue"] = pad(solve_mean_offsets(gap, tg["n_revenue"], degree("revenue"),
                                                 horizon))
    return coef


def _errors(rec: _Record, tg: dict) -> dict[str, dict[str, float | None]]:
    out = {}
    for k in ("visit", "purchase", "revenue", "unsubscribe"):
        s, lg = np.asarray(rec.drawn[k]), np.asarray(tg[k])
        ok = lg > 0
        out[k] = {"sim": float(s.mean()), "log": float(lg.mean()),
                  "rel_error": float(s.mean() / lg.mean() - 1) if lg.mean() > 0 else None,
                  "worst_period": float(np.max(np.abs(s[ok] / lg[ok] - 1))) if ok.any()
                  else None}
    return out


def fit_rollout_calibration(predictor: BehaviorPredictor, data: str | Path,
                            config: RolloutCalibrationConfig | None = None, *,
                            panel: pd.DataFrame | None = None, progress: bool = False
                            ) -> tuple[RolloutCalibration, dict]:
    """Fit the rollout offsets of ``predictor`` (left unchanged) on its validation users.

    Any head calibration the predictor holds stays and the offsets are fitted on top of it; a
    rollout calibration it already holds is ignored (refitted from scratch).

    Args:
        predictor: A fitted predictor with its user split (``split_``).
        data: The dataset folder it was fitted on.
        config: Options.
        panel: The dataset's panel when the caller already built it.
        progress: A progress bar over the rollouts (one per round, and the last check).

    Returns:
        The fitted :class:`RolloutCalibration` and a JSON-ready report: the validation users'
        replay (simulated vs logged rates, overall and worst period) before (``rounds[0]``)
        and after each round of fitting, and the logged events per head.
    """
    cfg = config or RolloutCalibrationConfig()
    if panel is None:
        panel = build_panel(open_dataset(data))
    last = int(panel["period"].max())
    horizon = min(cfg.horizon, last)
    if horizon < 2:
        raise ValueError(f"the log has {last + 1} periods; a rollout calibration needs at least 3")
    start = last + 1 - horizon
    saved = predictor.rollout_calibration_
    try:
        predictor.rollout_calibration_ = None
        shop = load_learned_shop(predictor, data, start_period=start, start_users="val",
                                 panel=panel)
        tg = _targets(panel, shop, start, horizon)
        if tg["n"] < MIN_USERS:
            warnings.warn(f"rollout calibration: only {tg['n']} validation users; the fitted "
                          "offsets carry their logged rates' sampling noise", stacklevel=2)
        activity = predictor.activity_
        heads = [h for h in cfg.heads if tg["events"][h] > 0
                 and not (h == "visit" and activity != "visit")]
        fitted_on = {"users": "val", "n_users": tg["n"], "start_period": start,
                     "replicates": cfg.replicates, "rounds": cfg.rounds,
                     "step_size": cfg.step_size, "seed": cfg.seed,
                     "logged_events": tg["events"]}
        cal = RolloutCalibration(horizon, cfg.degree, {}, fitted_on)
        rounds = []
        bar = tqdm(total=cfg.rounds + 1, desc="rollout calibration", unit="rollout",
                   disable=not progress)
        for k in range(cfg.rounds + 1):
            predictor.rollout_calibration_ = cal
            rec = _record_rollout(shop, tg["action"], horizon, cfg.replicates, cfg.seed)
            rounds.append({"round": k, "coef": {h: list(c) for h, c in cal.coef.items()},
                           "replay": _errors(rec, tg)})
            bar.update()
            if k == cfg.rounds:
                break
            new = _solve(rec, tg, cfg, horizon, heads, activity)
            old = {h: np.asarray(cal.coef.get(h, np.zeros(cfg.degree + 1))) for h in new}
            cal = RolloutCalibration(horizon, cfg.degree, {
                h: tuple(float(x) for x in old[h] + cfg.step_size * (np.asarray(c) - old[h]))
                for h, c in new.items()}, fitted_on)
        bar.close()
    finally:
        predictor.rollout_calibration_ = saved
    report = {"fitted_on": fitted_on, "horizon": horizon, "degree": cfg.degree,
              "heads": heads, "rounds": rounds, "calibration": cal.to_dict()}
    return cal, report
