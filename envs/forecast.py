"""Customer forecasts: roll every customer forward from the end of the log in the learned shop.

:func:`forecast_customers` simulates each start user ``replicates`` times for ``periods``
periods under a policy (default: no contact at all) and summarises, per customer:

* ``expected_purchases``: mean number of periods with a purchase in the horizon (the unit the
  shop simulates: a purchase is "a period with at least one purchase");
* ``expected_revenue``: mean revenue over the horizon, in the dataset's currency;
* ``p_any_purchase``: P(at least one purchase in the horizon);
* ``p_active_end``: P(still active at the end of the horizon), with the panel's own definition
  of ``active`` (an event in this period or a later one) looked ahead ``active_window`` periods:
  the share of replicates with activity (a visit, or a purchase for an orders log) in the
  ``active_window`` periods after the horizon, under the same policy.

Intervals (``1 - alpha``, default 95 %), two kinds, named in the columns:

* ``*_ci_low`` / ``*_ci_high``: confidence interval of the Monte-Carlo estimate (normal
  interval of the mean over replicates; Wilson score interval for the probabilities). They
  shrink with more replicates.
* ``*_pi_low`` / ``*_pi_high``: predictive interval of the customer's outcome itself (the
  ``alpha / 2`` and ``1 - alpha / 2`` quantiles of the replicates' draws).

The base's curve (``curve``) is per horizon period: the expected purchases of the whole base,
the cumulative expected purchases with their confidence interval, and the predictive interval
of the cumulative total (quantiles over replicates, each replicate a draw of the whole base).
Replicates are simulated in chunks of whole copies of the base; with the same ``seed``, shop and
``batch_size``, the forecast is identical.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from tqdm import tqdm

from envs.rollout import PolicyFn, rollout
from envs.shop_env import LearnedShop
from predictors import check_int, check_number

__all__ = ["CustomerForecast", "ForecastConfig", "forecast_customers", "wilson_interval"]


@dataclass(frozen=True)
class ForecastConfig:
    """Options of a customer forecast.

    Attributes:
        periods: Horizon in periods (from the end of the log).
        replicates: Simulated copies of each customer.
        active_window: Periods looked ahead after the horizon for ``p_active_end`` (0: no
            look-ahead and no ``p_active_end`` column).
        alpha: 1 - the level of the intervals.
        seed: Seed of the simulator's draws and the policy's generator.
        batch_size: Users simulated together (replicates are chunked to fit).
    """

    periods: int = 13
    replicates: int = 100
    active_window: int = 13
    alpha: float = 0.05
    seed: int = 0
    batch_size: int = 16384

    def __post_init__(self) -> None:
        check_int(self, "periods", "batch_size", ge=1)
        check_int(self, "replicates", ge=2)
        check_int(self, "active_window", ge=0)
        check_number(self, "alpha", gt=0, lt=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class CustomerForecast:
    """A forecast: one row per customer, the base's curve and a JSON-ready summary.

    Attributes:
        customers: ``user_id`` then the per-customer columns (module docstring).
        curve: One row per horizon period (``step`` 1..periods, ``period``).
        summary: Totals, the interval definitions and the config.
        purchases: ``(replicates, n)`` simulated purchase periods of each customer.
        revenue: ``(replicates, n)`` simulated revenue of each customer.
    """

    customers: pd.DataFrame
    curve: pd.DataFrame
    summary: dict[str, Any]
    purchases: np.ndarray
    revenue: np.ndarray


def wilson_interval(k: np.ndarray, n: int, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the proportion ``k / n`` (arrays of counts ``k``).

    Example:
        >>> lo, hi = wilson_interval(np.array([0, 5, 10]), 10)
        >>> bool(lo[0] < 1e-12 and hi[2] > 1 - 1e-12 and lo[1] < 0.5 < hi[1])
        True
    """
    z = float(norm.ppf(1 - alpha / 2))
    p = np.asarray(k, float) / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def forecast_customers(shop: LearnedShop, policy: PolicyFn | None = None,
                       config: ForecastConfig | None = None,
                       progress: bool = False) -> CustomerForecast:
    """Roll every start user of ``shop`` forward and summarise per customer.

    Args:
        shop: The learned shop, started at the end of the log (``load_learned_shop`` with its
            default ``start_period``) from the customers to forecast.
        policy: ``policy(obs, action_mask, rng) -> actions``; ``None``: the ``none`` action
            for everyone in every period (no contact).
        config: Horizon, replicates, intervals, seed.
        progress: Show a progress bar over the simulated replicates.

    Example:
        >>> shop = load_learned_shop("runs/gru", "data/shop", start_users="all")  # doctest: +SKIP
        >>> fc = forecast_customers(shop, None, ForecastConfig(periods=13))  # doctest: +SKIP
        >>> fc.customers[["user_id", "expected_purchases", "p_any_purchase"]]  # doctest: +SKIP
    """
    cfg = config or ForecastConfig()
    n, h = len(shop.starts), cfg.periods
    steps = h + cfg.active_window
    act = policy if policy is not None else np.full((n, steps), -1, np.int64)
    chunk = max(1, min(cfg.replicates, cfg.batch_size // max(n, 1)))
    activity = getattr(shop.simulator.predictor, "activity_", "visit")
    buys = np.zeros((cfg.replicates, n))
    money = np.zeros((cfg.replicates, n))
    any_buy = np.zeros((cfg.replicates, n), bool)
    active = np.zeros((cfg.replicates, n), bool)
    base = np.zeros((cfg.replicates, h))
    seeds = np.random.SeedSequence(cfg.seed).generate_state(-(-cfg.replicates // chunk))
    bar = tqdm(total=cfg.replicates, desc="forecast", unit="replicate", disable=not progress)
    for c, r0 in enumerate(range(0, cfg.replicates, chunk)):
        k = min(chunk, cfg.replicates - r0)
        res = rollout(shop, act, steps, seed=int(seeds[c]), replicates=k,
                      batch_size=cfg.batch_size)
        purchase = res.purchase[:, :h].reshape(k, n, h)
        rows = slice(r0, r0 + k)
        buys[rows] = purchase.sum(2)
        money[rows] = res.revenue[:, :h].reshape(k, n, h).sum(2)
        any_buy[rows] = purchase.any(2)
        base[rows] = purchase.sum(1)
        if cfg.active_window:
            later = (res.visit if activity == "visit" else res.purchase)[:, h:]
            active[rows] = later.reshape(k, n, -1).any(2)
        bar.update(k)
    bar.close()
    customers = _per_customer(shop.starts.user_ids, buys, money, any_buy,
                              active if cfg.active_window else None, cfg.alpha)
    curve = _curve(base, shop.starts.period, cfg.alpha)
    summary = _summary(customers, curve, buys, money, cfg, shop.starts.period, activity)
    return CustomerForecast(customers, curve, summary, buys, money)


def _mean_ci(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 with its normal confidence interval."""
    z = float(norm.ppf(1 - alpha / 2))
    m = x.mean(0)
    half = z * x.std(0, ddof=1) / np.sqrt(len(x))
    return m, m - half, m + half


def _per_customer(user_ids: np.ndarray, buys: np.ndarray, money: np.ndarray,
                  any_buy: np.ndarray, active: np.ndarray | None, alpha: float) -> pd.DataFrame:
    r = len(buys)
    out: dict[str, Any] = {"user_id": user_ids}
    for name, x in (("purchases", buys), ("revenue", money)):
        m, lo, hi = _mean_ci(x, alpha)
        out[f"expected_{name}"] = m
        out[f"expected_{name}_ci_low"] = np.maximum(lo, 0.0)
        out[f"expected_{name}_ci_high"] = hi
        q = np.quantile(x, [alpha / 2, 1 - alpha / 2], axis=0)
        out[f"{name}_pi_low"], out[f"{name}_pi_high"] = q[0], q[1]
    probs = [("p_any_purchase", any_buy)] + ([("p_active_end", active)]
                                             if active is not None else [])
    for name, x in probs:
        k = x.sum(0)
        lo, hi = wilson_interval(k, r, alpha)
        out[name], out[f"{name}_ci_low"], out[f"{name}_ci_high"] = k / r, lo, hi
    return pd.DataFrame(out)


def _curve(base: np.ndarray, start: int, alpha: float) -> pd.DataFrame:
    cum = np.cumsum(base, axis=1)
    m, lo, hi = _mean_ci(cum, alpha)
    q = np.quantile(cum, [alpha / 2, 1 - alpha / 2], axis=0)
    h = base.shape[1]
    return pd.DataFrame({"step": np.arange(1, h + 1), "period": start + np.arange(h),
                         "expected_purchases": base.mean(0),
                         "cumulative_expected_purchases": m,
                         "cumulative_ci_low": lo, "cumulative_ci_high": hi,
                         "cumulative_pi_low": q[0], "cumulative_pi_high": q[1]})


def _summary(customers: pd.DataFrame, curve: pd.DataFrame, buys: np.ndarray, money: np.ndarray,
             cfg: ForecastConfig, start: int, activity: str) -> dict[str, Any]:
    level = f"{1 - cfg.alpha:.0%}"
    totals = {}
    for name, x in (("purchases", buys), ("revenue", money)):
        m, lo, hi = _mean_ci(x.sum(1, keepdims=True), cfg.alpha)
        q = np.quantile(x.sum(1), [cfg.alpha / 2, 1 - cfg.alpha / 2])
        totals[name] = {"expected": float(m[0]), "ci_low": float(lo[0]), "ci_high": float(hi[0]),
                        "pi_low": float(q[0]), "pi_high": float(q[1])}
    out: dict[str, Any] = {
        "n_customers": len(customers), "start_period": int(start),
        "periods": [int(start), int(start + cfg.periods - 1)], "activity": activity,
        "purchase_unit": "a period with at least one purchase",
        "config": cfg.to_dict(), "totals": totals,
        "mean_p_any_purchase": float(customers["p_any_purchase"].mean()),
        "intervals": {
            "*_ci_low/*_ci_high": f"{level} confidence interval of the Monte-Carlo estimate over "
                                  f"{cfg.replicates} replicates (normal interval of the mean; "
                                  "Wilson score interval for probabilities)",
            "*_pi_low/*_pi_high": f"{level} predictive interval of the outcome itself (the "
                                  f"{cfg.alpha / 2:g} and {1 - cfg.alpha / 2:g} quantiles of the "
                                  "replicates' draws)",
        },
        "p_active_end": (f"share of replicates with {activity} activity in the "
                         f"{cfg.active_window} periods after the horizon" if cfg.active_window
                         else None),
        "curve": curve.to_dict("list"),
    }
    if "p_active_end" in customers:
        out["mean_p_active_end"] = float(customers["p_active_end"].mean())
    return out
