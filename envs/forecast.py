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

Estimators (``ForecastConfig.estimator``):

* ``rao_blackwell`` (default): the means and probabilities come from the model's per-period
  purchase probabilities instead of counting drawn purchases. ``expected_purchases`` (and the
  curve) average the sum of ``p_purchase`` along each simulated path (the same expectation as
  the drawn purchases, the period's coin flip integrated out). ``p_any_purchase`` is
  ``1 - mean(prod(1 - p_purchase))`` over paths drawn GIVEN no purchase
  (:meth:`envs.simulator.ShopSimulator.step` with ``no_purchase``): by the chain rule
  P(no purchase in the horizon) is the expectation of that product, so the estimate is
  unbiased; it is exact after one path when nothing but the purchase is random (an orders log
  under a deterministic policy), and it never ties customers at 0/R, 1/R, ... as counts do. It
  costs a second, purchase-free set of ``replicates`` paths over the horizon.
* ``sampled``: the share / mean of the drawn purchases over the replicates.

Either way the predictive intervals, ``expected_revenue`` and ``p_active_end`` come from the
drawn paths.

Intervals (``1 - alpha``, default 95 %), two kinds, named in the columns:

* ``*_ci_low`` / ``*_ci_high``: confidence interval of the Monte-Carlo estimate (normal
  interval of the mean over replicates; for the probabilities the Wilson score interval when
  sampled, the normal interval of the mean of the per-path probabilities when
  Rao-Blackwellised). They shrink with more replicates.
* ``*_pi_low`` / ``*_pi_high``: predictive interval of the customer's outcome itself (the
  ``alpha / 2`` and ``1 - alpha / 2`` quantiles of the replicates' draws).

The base's curve (``curve``) is per horizon period: the expected purchases of the whole base,
the cumulative expected purchases with their confidence interval, and the predictive interval
of the cumulative total (quantiles over replicates, each replicate a draw of the whole base).
Replicates are simulated in chunks of whole copies of the base; with the same ``seed``, shop and
``batch_size``, the forecast is identical.

Several models (e.g. K fits of one family that differ only in their seed) are averaged by
passing one shop per model: each model simulates its ``replicates`` paths with the same seeds
and the paths are pooled, so each customer's expected purchases and P(any purchase) are the
mean of the models' own forecasts (the predictive law of a model drawn once per customer, which
keeps the Rao-Blackwellised P(any purchase) exact on an orders log), and the predictive
intervals are those of that mixture. This averages out the variance of one fit (its
initialisation, minibatch order and early-stopping epoch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from tqdm import tqdm

from envs.rollout import PolicyFn, rollout
from envs.shop_env import LearnedShop
from predictors import check_int, check_number

__all__ = ["ESTIMATORS", "CustomerForecast", "ForecastConfig", "forecast_customers",
           "wilson_interval"]

#: How the means and P(any purchase) are estimated from the simulated paths.
ESTIMATORS = ("rao_blackwell", "sampled")


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
        estimator: ``rao_blackwell`` (means and P(any purchase) from the per-period purchase
            probabilities, module docstring) or ``sampled`` (counts of drawn purchases).
    """

    periods: int = 13
    replicates: int = 100
    active_window: int = 13
    alpha: float = 0.05
    seed: int = 0
    batch_size: int = 16384
    estimator: str = "rao_blackwell"

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"`estimator` must be one of {list(ESTIMATORS)}; got "
                             f"{self.estimator!r}")
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
        purchases: ``(replicates, n)`` simulated purchase periods of each customer (with
            several models, ``(models * replicates, n)``, model by model; likewise below).
        revenue: ``(replicates, n)`` simulated revenue of each customer.
        expected: ``(replicates, n)`` each path's estimate of the customer's expected purchase
            periods (the sum of ``p_purchase``, or ``purchases`` when sampled).
        p_any: ``(replicates, n)`` each path's estimate of P(any purchase) (``1 - prod(1 -
            p_purchase)`` along a purchase-free path, or the 0/1 draw when sampled).
    """

    customers: pd.DataFrame
    curve: pd.DataFrame
    summary: dict[str, Any]
    purchases: np.ndarray
    revenue: np.ndarray
    expected: np.ndarray
    p_any: np.ndarray


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


def forecast_customers(shop: LearnedShop | Sequence[LearnedShop],
                       policy: PolicyFn | None = None,
                       config: ForecastConfig | None = None,
                       progress: bool = False) -> CustomerForecast:
    """Roll every start user of ``shop`` forward and summarise per customer.

    Args:
        shop: The learned shop, started at the end of the log (``load_learned_shop`` with its
            default ``start_period``) from the customers to forecast; or several shops, one
            per fitted model (e.g. the members of an ensemble), over the same customers: the
            forecast then averages the models (each simulates ``replicates`` paths with the
            same seeds, and the paths are pooled, so every mean is the mean of the models'
            own forecasts and the predictive intervals are those of the mixture).
        policy: ``policy(obs, action_mask, rng) -> actions``; ``None``: the ``none`` action
            for everyone in every period (no contact).
        config: Horizon, replicates, intervals, seed.
        progress: Show a progress bar over the simulated replicates.

    Raises:
        ValueError: No shop, or shops that start other customers or periods.

    Example:
        >>> shop = load_learned_shop("runs/gru", "data/shop", start_users="all")  # doctest: +SKIP
        >>> fc = forecast_customers(shop, None, ForecastConfig(periods=13))  # doctest: +SKIP
        >>> fc.customers[["user_id", "expected_purchases", "p_any_purchase"]]  # doctest: +SKIP
    """
    cfg = config or ForecastConfig()
    shops = [shop] if isinstance(shop, LearnedShop) else list(shop)
    if not shops:
        raise ValueError("`shop`: give at least one learned shop")
    first = shops[0].starts
    for k, s in enumerate(shops[1:], 1):
        if s.starts.period != first.period or not np.array_equal(s.starts.user_ids,
                                                                 first.user_ids):
            raise ValueError(f"`shop` {k} starts other customers or another period than "
                             "shop 0; every model must forecast the same customers")
    runs = [_simulate(s, policy, cfg, progress) for s in shops]
    buys, money, expected, any_buy, active, base, base_expected = (
        np.concatenate(x) for x in zip(*runs, strict=True))
    rb = cfg.estimator == "rao_blackwell"
    activity = getattr(shops[0].simulator.predictor, "activity_", "visit")
    customers = _per_customer(first.user_ids, buys, money, expected, any_buy,
                              active if cfg.active_window else None, cfg.alpha, rb)
    curve = _curve(base, base_expected, first.period, cfg.alpha)
    summary = _summary(customers, curve, buys, money, expected, cfg, first.period,
                       activity) | {"models": len(shops)}
    return CustomerForecast(customers, curve, summary, buys, money, expected, any_buy)


def _simulate(shop: LearnedShop, policy: PolicyFn | None, cfg: ForecastConfig,
              progress: bool) -> tuple[np.ndarray, ...]:
    """One model's ``replicates`` paths: per replicate and customer the drawn purchases, the
    revenue, the estimates of E[purchases] and P(any), the activity after the horizon; per
    replicate and period the base's drawn and estimated purchases."""
    n, h = len(shop.starts), cfg.periods
    steps = h + cfg.active_window
    act = policy if policy is not None else np.full((n, steps), -1, np.int64)
    chunk = max(1, min(cfg.replicates, cfg.batch_size // max(n, 1)))
    activity = getattr(shop.simulator.predictor, "activity_", "visit")
    rb = cfg.estimator == "rao_blackwell"
    buys = np.zeros((cfg.replicates, n))
    money = np.zeros((cfg.replicates, n))
    expected = np.zeros((cfg.replicates, n))
    any_buy = np.zeros((cfg.replicates, n))
    active = np.zeros((cfg.replicates, n), bool)
    base = np.zeros((cfg.replicates, h))
    base_expected = np.zeros((cfg.replicates, h))
    n_chunks = -(-cfg.replicates // chunk)
    seeds = np.random.SeedSequence(cfg.seed).generate_state(n_chunks)
    # the purchase-free paths get their own stream (the drawn paths stay those of `sampled`)
    seeds_free = np.random.SeedSequence([cfg.seed, 1]).generate_state(n_chunks)
    bar = tqdm(total=cfg.replicates, desc="forecast", unit="replicate", disable=not progress)
    for c, r0 in enumerate(range(0, cfg.replicates, chunk)):
        k = min(chunk, cfg.replicates - r0)
        res = rollout(shop, act, steps, seed=int(seeds[c]), replicates=k,
                      batch_size=cfg.batch_size)
        purchase = res.purchase[:, :h].reshape(k, n, h)
        rows = slice(r0, r0 + k)
        buys[rows] = purchase.sum(2)
        money[rows] = res.revenue[:, :h].reshape(k, n, h).sum(2)
        base[rows] = purchase.sum(1)
        if rb:
            p_buy = res.p_purchase[:, :h].reshape(k, n, h)
            expected[rows], base_expected[rows] = p_buy.sum(2), p_buy.sum(1)
            free = rollout(shop, act, h, seed=int(seeds_free[c]), replicates=k,
                           batch_size=cfg.batch_size, no_purchase=True)
            stay = np.log1p(-np.minimum(free.p_purchase.reshape(k, n, h), 1.0 - 1e-12))
            any_buy[rows] = -np.expm1(stay.sum(2))
        else:
            expected[rows], base_expected[rows] = buys[rows], base[rows]
            any_buy[rows] = purchase.any(2)
        if cfg.active_window:
            later = (res.visit if activity == "visit" else res.purchase)[:, h:]
            active[rows] = later.reshape(k, n, -1).any(2)
        bar.update(k)
    bar.close()
    return buys, money, expected, any_buy, active, base, base_expected


def _mean_ci(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 with its normal confidence interval."""
    z = float(norm.ppf(1 - alpha / 2))
    m = x.mean(0)
    half = z * x.std(0, ddof=1) / np.sqrt(len(x))
    return m, m - half, m + half


def _per_customer(user_ids: np.ndarray, buys: np.ndarray, money: np.ndarray,
                  expected: np.ndarray, any_buy: np.ndarray, active: np.ndarray | None,
                  alpha: float, rb: bool) -> pd.DataFrame:
    r = len(buys)
    out: dict[str, Any] = {"user_id": user_ids}
    for name, x, draws in (("purchases", expected, buys), ("revenue", money, money)):
        m, lo, hi = _mean_ci(x, alpha)
        out[f"expected_{name}"] = m
        out[f"expected_{name}_ci_low"] = np.maximum(lo, 0.0)
        out[f"expected_{name}_ci_high"] = hi
        q = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
        out[f"{name}_pi_low"], out[f"{name}_pi_high"] = q[0], q[1]
    probs = [("p_any_purchase", any_buy, rb)] + ([("p_active_end", active, False)]
                                                 if active is not None else [])
    for name, x, smooth in probs:
        if smooth:  # per-path probabilities: the normal interval of their mean
            p, lo, hi = _mean_ci(x, alpha)
            lo, hi = np.clip(lo, 0.0, p), np.clip(hi, p, 1.0)
        else:
            k = x.sum(0)
            p = k / r
            lo, hi = wilson_interval(k, r, alpha)
        out[name], out[f"{name}_ci_low"], out[f"{name}_ci_high"] = p, lo, hi
    return pd.DataFrame(out)


def _curve(base: np.ndarray, expected: np.ndarray, start: int, alpha: float) -> pd.DataFrame:
    m, lo, hi = _mean_ci(np.cumsum(expected, axis=1), alpha)
    q = np.quantile(np.cumsum(base, axis=1), [alpha / 2, 1 - alpha / 2], axis=0)
    h = base.shape[1]
    return pd.DataFrame({"step": np.arange(1, h + 1), "period": start + np.arange(h),
                         "expected_purchases": expected.mean(0),
                         "cumulative_expected_purchases": m,
                         "cumulative_ci_low": lo, "cumulative_ci_high": hi,
                         "cumulative_pi_low": q[0], "cumulative_pi_high": q[1]})


def _summary(customers: pd.DataFrame, curve: pd.DataFrame, buys: np.ndarray, money: np.ndarray,
             expected: np.ndarray, cfg: ForecastConfig, start: int,
             activity: str) -> dict[str, Any]:
    level = f"{1 - cfg.alpha:.0%}"
    totals = {}
    for name, x, draws in (("purchases", expected, buys), ("revenue", money, money)):
        m, lo, hi = _mean_ci(x.sum(1, keepdims=True), cfg.alpha)
        q = np.quantile(draws.sum(1), [cfg.alpha / 2, 1 - cfg.alpha / 2])
        totals[name] = {"expected": float(m[0]), "ci_low": float(lo[0]), "ci_high": float(hi[0]),
                        "pi_low": float(q[0]), "pi_high": float(q[1])}
    out: dict[str, Any] = {
        "n_customers": len(customers), "start_period": int(start),
        "periods": [int(start), int(start + cfg.periods - 1)], "activity": activity,
        "purchase_unit": "a period with at least one purchase",
        "estimator": (f"{cfg.estimator}: " + (
            "expected purchases = mean over paths of the summed per-period purchase "
            "probabilities; P(any purchase) = 1 - mean over purchase-free paths of the product "
            "of (1 - purchase probability)" if cfg.estimator == "rao_blackwell" else
            "means and shares of the drawn purchases")),
        "config": cfg.to_dict(), "totals": totals,
        "mean_p_any_purchase": float(customers["p_any_purchase"].mean()),
        "intervals": {
            "*_ci_low/*_ci_high": f"{level} confidence interval of the Monte-Carlo estimate over "
                                  f"{len(buys)} replicates (normal interval of the mean; "
                                  + ("p_any_purchase: of the per-path probabilities; "
                                     "p_active_end: Wilson score interval)"
                                     if cfg.estimator == "rao_blackwell" else
                                     "Wilson score interval for probabilities)"),
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
