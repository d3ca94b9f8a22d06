"""Does the learned shop get each action's effect right? A check from logged propensities.

For every logged user-period ``(i, t)`` of the held-out users' window, and each horizon ``K``:

* the LOG's value: the logged sum of rewards over ``t .. t+K-1`` (revenue - send cost - redeemed
  discount), i.e. "take the logged action ``A_t``, then continue as the log did";
* the SHOP's value on the same row: start the learned shop from the user's TRUE history before
  ``t``, apply the logged actions ``A_t .. A_{t+K-1}`` open loop and sum the shop's expected
  rewards (``replicates`` seeded copies).

Averaged over the rows whose logged action is ``a``, each row weighted by ``1 / pscore`` (the
logging policy's known probability of ``a`` there) and self-normalised per action, the log side
is an importance-sampling estimate of "send ``a`` at a state drawn from the logged state
distribution, then continue as the log did" (one weight per row: only the first action is
re-weighted). The shop side is computed on exactly the same rows with the same weights, so
``bias[a] = shop[a] - log[a]`` is the shop's bias for ``a``'s ``K``-step value over the logged
states, and ``bias[a] - bias[none]`` its bias in the advantage of ``a`` over not contacting. No
truth is needed, so the check runs on any log with propensities. Intervals are percentile
bootstraps over users (rows of one user move together).

Rows whose logged action was certain (``pscore == 1``, e.g. a universal control group) are left
out: no other action was possible there, so they inform no comparison between actions.

Caveat for ``K > 1``: the log's later actions reacted to the log's own outcomes, while the shop
replays them whatever it simulated, so even a perfect shop can differ from the log at ``K > 1``
(never at ``K = 1``). On a synthetic shop the TRUE one-step counterpart
(``truth/outcomes.parquet``: the world's expected reward of every action at every logged state)
is reported for ``K = 1`` on the same rows and weights: ``log - true`` there is the log
estimate's own noise, ``shop - true`` the shop's bias without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from envs.shop_env import LearnedShop
from envs.simulator import RAW_COLUMNS, ShopSimulator, StartStates
from predictors.config_checks import check_int, check_number
from predictors.errors import ConfigError


@dataclass(frozen=True)
class ActionEffectConfig:
    """Options of :func:`action_effect_fidelity`.

    Attributes:
        horizons: Horizons ``K`` (periods summed after the first action), each >= 1.
        replicates: Simulated copies of each row.
        n_boot: Bootstrap resamples of the users for the intervals.
        alpha: Intervals are ``1 - alpha``.
        max_weight: Largest importance weight (``None``: no clipping).
        seed: Seed of the simulated draws and the bootstrap.
    """

    horizons: tuple[int, ...] = (1, 4, 8)
    replicates: int = 4
    n_boot: int = 500
    alpha: float = 0.05
    max_weight: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.horizons or any(not isinstance(k, int) or k < 1 for k in self.horizons):
            raise ConfigError(f"`horizons` must be integers >= 1; got {list(self.horizons)!r}")
        check_int(self, "replicates", "n_boot", ge=1)
        check_number(self, "alpha", gt=0, lt=1)
        check_number(self, "max_weight", ge=1, optional=True)


@dataclass(frozen=True)
class LoggedSteps:
    """The logged window of the start users, arrays ``(n, T)`` (``raw``: ``(n, T, 7)``).

    ``action`` is the logged action (``none`` where the log has no row), ``pscore`` its logged
    propensity (NaN where unknown), ``eligible`` whether the row may be a first action (a
    known propensity below 1).
    """

    action: np.ndarray
    pscore: np.ndarray
    raw: np.ndarray
    eligible: np.ndarray


def logged_steps(panel: pd.DataFrame, shop: LearnedShop, horizon: int) -> LoggedSteps:
    """The logged periods ``start .. start + horizon - 1`` of the shop's start users.

    Raises:
        ConfigError: The log holds no propensities in the window (the check needs them).
    """
    ids, start = shop.starts.user_ids, shop.starts.period
    sub = panel[panel["user_id"].isin(ids) & (panel["period"] >= start)
                & (panel["period"] < start + horizon)]
    pos = pd.Series(np.arange(len(ids)), index=ids)
    r, c = pos.loc[sub["user_id"]].to_numpy(), sub["period"].to_numpy() - start
    n = len(ids)
    none = shop.simulator.none_index
    action = np.full((n, horizon), -1 if none is None else none, np.int64)
    a = sub["action_index"].to_numpy()
    action[r, c] = np.where(a < 0, action[r, c], a)
    pscore = np.full((n, horizon), np.nan)
    if "propensity" in sub:
        pscore[r, c] = sub["propensity"].to_numpy(dtype=float)
    pscore[r[a < 0], c[a < 0]] = np.nan  # no intervention logged: not a first action
    if (action < 0).any():
        raise ConfigError("the log has periods without a logged action and the catalog has no "
                          "'none' action to replay them with")
    raw = np.zeros((n, horizon, len(RAW_COLUMNS)), np.float32)
    for j, col in enumerate(RAW_COLUMNS):
        raw[r, c, j] = sub[col].to_numpy(dtype=np.float32)
    eligible = np.isfinite(pscore) & (pscore > 0) & (pscore < 1)
    if not eligible.any():
        raise ConfigError("the per-action effect check needs logged propensities below 1 "
                          "(interventions.parquet `propensity`); this log has none in the "
                          f"window of periods {start}..{start + horizon - 1}")
    return LoggedSteps(action, pscore, raw, eligible)


def _as_starts(sim: ShopSimulator) -> StartStates:
    """The simulator's current users as start states (``load`` copies what it takes)."""
    return StartStates(np.arange(sim.n), 0, sim.tracker, sim.state, sim.static, sim.unsub,
                       sim.since_coupon, sim.contacts)


def along_log(shop: LearnedShop, steps: LoggedSteps) -> Iterator[tuple[int, ShopSimulator]]:
    """Yield ``(t, sim)``: a simulator holding the start users at their TRUE history before
    window period ``t`` (it moves on by the logged period after each yield; do not step it)."""
    sim = shop.simulator.clone()
    sim.load(shop.starts, np.arange(len(shop.starts)))
    for t in range(steps.action.shape[1]):
        yield t, sim
        sim.observe(steps.action[:, t], steps.raw[:, t])


def logged_rewards(sim: ShopSimulator, action: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """``(n,)`` logged reward of one period: revenue - send cost - redeemed discount (no
    discount where the action's channel was unsubscribed, as the simulator rewards it)."""
    _, blocked = sim.effective_action(action)
    revenue = raw[:, RAW_COLUMNS.index("revenue")].astype(float)
    bought = raw[:, RAW_COLUMNS.index("purchases")] > 0
    disc = np.where(blocked | ~bought, 0.0, sim.discount[action])
    return revenue - sim.cost[action] - disc * revenue


def simulate_sums(shop: LearnedShop, steps: LoggedSteps, horizons: tuple[int, ...],
                  replicates: int, seed: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """The shop's ``K``-step sums of expected rewards from every row's true history.

    Returns:
        Per ``K``, ``(n, T)`` mean over replicates (NaN where ``t + K > T``), and the
        ``(n, T)`` logged rewards.
    """
    n, horizon = steps.action.shape
    k_max = max(horizons)
    sums = {k: np.full((n, horizon), np.nan) for k in horizons}
    log_reward = np.zeros((n, horizon))
    src = np.tile(np.arange(n), replicates)
    for t, sim in along_log(shop, steps):
        log_reward[:, t] = logged_rewards(sim, steps.action[:, t], steps.raw[:, t])
        branch = sim.clone()
        branch.load(_as_starts(sim), src)
        rng = np.random.default_rng([seed, t])
        total = np.zeros(len(src))
        for k in range(min(k_max, horizon - t)):
            total += branch.step(steps.action[src, t + k], rng)["expected_reward"]
            if k + 1 in sums:
                sums[k + 1][:, t] = total.reshape(replicates, n).mean(0)
    return sums, log_reward


def true_one_step(truth: pd.DataFrame, shop: LearnedShop, horizon: int) -> np.ndarray:
    """``(n, T, A)`` the world's expected one-period reward of every action at every logged
    state of the window (``truth/outcomes.parquet`` rows; NaN where absent)."""
    ids, start = shop.starts.user_ids, shop.starts.period
    names = list(shop.spec.action_names)
    sub = truth[truth["user_id"].isin(ids) & (truth["period"] >= start)
                & (truth["period"] < start + horizon)]
    pos = pd.Series(np.arange(len(ids)), index=ids)
    out = np.full((len(ids), horizon, len(names)), np.nan)
    j = sub["action"].map({a: k for k, a in enumerate(names)})
    ok = j.notna().to_numpy()
    out[pos.loc[sub["user_id"]].to_numpy()[ok], sub["period"].to_numpy()[ok] - start,
        j.to_numpy()[ok].astype(int)] = sub["expected_reward"].to_numpy()[ok]
    return out


def _per_user(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(n,)`` per-user weighted sums (rows with weight 0 count for nothing)."""
    return np.where(w > 0, w * np.nan_to_num(x), 0.0).sum(1)


def action_effect_fidelity(shop: LearnedShop, panel: pd.DataFrame, horizon: int,
                           config: ActionEffectConfig | None = None, *,
                           truth: pd.DataFrame | None = None) -> dict:
    """Per action and horizon: IPW log value, shop value, bias and bias in the advantage.

    ``shop`` must start ``horizon`` periods before the end of the log (as in
    :func:`envs.fidelity.replay_fidelity`); ``truth``: a synthetic shop's
    ``truth/outcomes.parquet`` for the TRUE one-step counterpart.

    Returns:
        JSON-ready dict: ``horizons`` -> ``K`` -> ``actions`` -> action name -> ``n_rows``,
        ``weight_sum``, ``log`` (with ``log_low``/``log_high``), ``sim``, ``bias`` (with
        interval), ``rel_bias``, ``advantage_log``, ``advantage_sim``, ``advantage_bias`` (with
        interval; relative to ``none``), and for ``K = 1`` with truth ``true``,
        ``sim_minus_true``, ``log_minus_true``, ``advantage_true``; plus ``max_abs_advantage_bias``
        per ``K``.
    """
    cfg = config or ActionEffectConfig()
    steps = logged_steps(panel, shop, horizon)
    horizons = tuple(k for k in sorted(set(cfg.horizons)) if k <= horizon)
    if not horizons:
        raise ConfigError(f"`horizons` {list(cfg.horizons)} all exceed the window of "
                          f"{horizon} periods")
    sums, log_reward = simulate_sums(shop, steps, horizons, cfg.replicates, cfg.seed)
    true1 = true_one_step(truth, shop, horizon) if truth is not None else None
    n, _ = steps.action.shape
    names = list(shop.spec.action_names)
    none = shop.simulator.none_index
    weight = np.where(steps.eligible, 1.0 / np.where(steps.eligible, steps.pscore, 1.0), 0.0)
    if cfg.max_weight is not None:
        weight = np.minimum(weight, cfg.max_weight)
    boot = np.random.default_rng([cfg.seed, 7]).integers(0, n, size=(cfg.n_boot, n))
    counts = np.stack([np.bincount(b, minlength=n) for b in boot]).astype(float)
    lo_q, hi_q = 100 * cfg.alpha / 2, 100 * (1 - cfg.alpha / 2)
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(log_reward, 1)], 1)
    out: dict = {"users": n, "start_period": int(shop.starts.period), "window": horizon,
                 "replicates": cfg.replicates, "n_boot": cfg.n_boot, "alpha": cfg.alpha,
                 "max_weight": cfg.max_weight,
                 "rows_left_out": int((~steps.eligible).sum()),
                 "weights": "1 / pscore of the logged action, self-normalised per action",
                 "first_action": "re-weighted; later actions replayed open loop as logged",
                 "horizons": {}}
    for k in horizons:
        valid = np.arange(horizon)[None, :] + k <= horizon
        log_k = np.full((n, horizon), np.nan)
        log_k[:, : horizon - k + 1] = csum[:, k:] - csum[:, : horizon - k + 1]
        per: dict = {}
        stats: dict = {}  # per action: (point, bootstrap) of log and sim
        for j, name in enumerate(names):
            w = np.where(valid & (steps.action == j), weight, 0.0)
            if w.sum() <= 0:
                continue
            wu, lu, su = w.sum(1), _per_user(log_k, w), _per_user(sums[k], w)
            bw = counts @ wu
            ok = bw > 0
            b_log = np.where(ok, counts @ lu / np.where(ok, bw, 1), np.nan)
            b_sim = np.where(ok, counts @ su / np.where(ok, bw, 1), np.nan)
            row = {"n_rows": int((w > 0).sum()), "weight_sum": float(w.sum()),
                   "log": float(lu.sum() / wu.sum()), "sim": float(su.sum() / wu.sum())}
            row["log_low"], row["log_high"] = (float(x) for x in np.nanpercentile(
                b_log, [lo_q, hi_q]))
            row["bias"] = row["sim"] - row["log"]
            row["bias_low"], row["bias_high"] = (float(x) for x in np.nanpercentile(
                b_sim - b_log, [lo_q, hi_q]))
            row["rel_bias"] = row["bias"] / abs(row["log"]) if row["log"] else None
            if true1 is not None and k == 1:
                tu = _per_user(true1[:, :, j], w)
                row["true"] = float(tu.sum() / wu.sum())
                row["sim_minus_true"] = row["sim"] - row["true"]
                row["log_minus_true"] = row["log"] - row["true"]
            per[name], stats[name] = row, (b_log, b_sim)
        base = names[none] if none is not None else None
        if base in per:
            b_log0, b_sim0 = stats[base]
            for name, row in per.items():
                row["advantage_log"] = row["log"] - per[base]["log"]
                row["advantage_sim"] = row["sim"] - per[base]["sim"]
                row["advantage_bias"] = row["advantage_sim"] - row["advantage_log"]
                b_log, b_sim = stats[name]
                row["advantage_bias_low"], row["advantage_bias_high"] = (
                    float(x) for x in np.nanpercentile((b_sim - b_log) - (b_sim0 - b_log0),
                                                       [lo_q, hi_q]))
                if "true" in row:
                    row["advantage_true"] = row["true"] - per[base]["true"]
        adv = [abs(r["advantage_bias"]) for r in per.values() if "advantage_bias" in r]
        rel = [abs(r["rel_bias"]) for r in per.values() if r["rel_bias"] is not None]
        out["horizons"][str(k)] = {
            "actions": per, "relative_to": base,
            "max_abs_advantage_bias": float(max(adv)) if adv else None,
            "max_abs_rel_bias": float(max(rel)) if rel else None}
    return out
