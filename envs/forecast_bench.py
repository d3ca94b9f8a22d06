"""Forecast benchmark: calibrate on the earlier periods of a log, forecast the later ones.

:func:`forecast_bench` cuts the dataset at the end of period ``calibration_periods - 1``
(:func:`predictors.cutoff.cut_dataset`, so nothing of the holdout reaches any model), then for
every customer with a purchase in the calibration periods forecasts the ``holdout_periods``
periods after it:

* each predictor family: fitted on the calibration log, every customer rolled forward in the
  learned shop from where the calibration log ends (:func:`envs.forecast.forecast_customers`,
  no contact, the only action a log without sends knows; expected purchases and P(any
  purchase) Rao-Blackwellised by default, ``estimator``);
  with ``members`` K > 1, K fits of the family that differ only in their seed (initial
  weights and minibatch order, ``PredictorConfig.member``; same split) are each forecast with
  the same simulation seeds and their per-customer forecasts averaged (the family's row; each
  fit also gets its own row, ``FAMILY#k``, to show the spread from one fit to the next);
* BG/NBD and Pareto/NBD (:class:`predictors.models.btyd.BTYDBaseline`) fitted on the same
  customers' calibration purchases.

A purchase is a period with at least one purchase (the unit of both). Metrics on the holdout, per
customer: RMSE and MAE of the number of purchase periods, AUC of "any purchase" (scored by each
method's P(any purchase)), the relative total error (sum predicted - sum actual) / sum actual,
and the MAPE of the base's cumulative per-period tracking curve. Against BG/NBD each method gets
paired differences with a customer bootstrap interval (same customers resampled for both).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from envs.forecast import ForecastConfig, forecast_customers
from envs.shop_env import LearnedShop
from envs.simulator import ActivityModel, ShopSimulator, build_start_states
from predictors import (
    ConfigError,
    build_panel,
    check_int,
    cut_dataset,
    load_users,
    open_dataset,
)
from predictors.models import FAMILIES, BehaviorPredictor, roc_auc
from predictors.models.btyd import BTYD_MODELS, BTYDBaseline, BTYDConfig, rfm_summary
from predictors.models.realdata import RealDataConfig

__all__ = ["ForecastBenchConfig", "forecast_bench", "forecast_metrics"]

#: The metrics compared with BG/NBD, and whether lower is better.
COMPARED = {"rmse": True, "mae": True, "auc": False, "abs_total_error": True}


@dataclass(frozen=True)
class ForecastBenchConfig:
    """Split, methods and budget of the forecast benchmark.

    Attributes:
        calibration_periods: Periods ``0 .. calibration_periods - 1`` are the calibration log.
        holdout_periods: Periods forecast after it (and scored).
        families: Predictor families fitted (each one of :data:`FAMILIES`).
        baselines: Buy-till-you-die baselines (each one of ``BTYD_MODELS``).
        replicates: Simulated copies of each customer per family.
        epochs, patience, hidden, batch_users: Each family's training budget
            (:class:`predictors.models.realdata.RealDataConfig`).
        seed: Seed of the fits, the simulation and the bootstrap.
        n_boot: Customer bootstrap resamples of the paired differences.
        alpha: 1 - the level of the intervals.
        device: Training device.
        estimator: How each family's forecast turns its paths into means and P(any purchase)
            (:data:`envs.forecast.ESTIMATORS`; default Rao-Blackwellised).
        members: Fits per family whose forecasts are averaged (1: one fit).
    """

    calibration_periods: int = 39
    holdout_periods: int = 14
    families: tuple[str, ...] = FAMILIES
    baselines: tuple[str, ...] = tuple(BTYD_MODELS)
    replicates: int = 32
    epochs: int = 12
    patience: int = 3
    hidden: int = 64
    batch_users: int = 32
    seed: int = 0
    n_boot: int = 500
    alpha: float = 0.05
    device: str = "cpu"
    estimator: str = "rao_blackwell"
    members: int = 1

    def __post_init__(self) -> None:
        check_int(self, "calibration_periods", "holdout_periods", "n_boot", "members", ge=1)
        bad = [b for b in self.baselines if b not in BTYD_MODELS]
        if bad:
            raise ConfigError(f"`baselines` must be among {list(BTYD_MODELS)}; got {bad}")
        if not self.families and not self.baselines:
            raise ConfigError("give at least one family or baseline")
        if self.families:
            self.budget()  # validates families, epochs, patience, hidden, batch_users, alpha
        ForecastConfig(periods=self.holdout_periods, replicates=self.replicates,
                       active_window=0, alpha=self.alpha, seed=self.seed,
                       estimator=self.estimator)

    def budget(self) -> RealDataConfig:
        """The families' training budget."""
        return RealDataConfig(families=self.families, epochs=self.epochs, patience=self.patience,
                              hidden=self.hidden, batch_users=self.batch_users, seed=self.seed,
                              alpha=self.alpha, device=self.device)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def forecast_metrics(actual: np.ndarray, expected: np.ndarray, p_any: np.ndarray,
                     actual_curve: np.ndarray, curve: np.ndarray) -> dict[str, float]:
    """Holdout metrics of one method (module docstring).

    Example:
        >>> m = forecast_metrics(np.array([0, 2]), np.array([0.5, 1.5]), np.array([0.2, 0.9]),
        ...                      np.array([1.0, 2.0]), np.array([1.0, 3.0]))
        >>> m["rmse"], m["auc"], m["total_error"], m["curve_mape"]
        (0.5, 1.0, 0.0, 0.25)
    """
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    err = expected - actual
    total = float(actual.sum())
    te = float(err.sum() / total) if total else float("nan")
    ok = actual_curve > 0
    mape = float(np.mean(np.abs(curve[ok] - actual_curve[ok]) / actual_curve[ok]))
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
            "auc": roc_auc(actual > 0, p_any), "total_error": te, "abs_total_error": abs(te),
            "curve_mape": mape, "mean_expected": float(expected.mean()),
            "mean_actual": float(actual.mean())}


def _bootstrap(actual: np.ndarray, methods: dict[str, tuple[np.ndarray, np.ndarray]],
               ref: str, cfg: ForecastBenchConfig) -> dict[str, dict[str, dict[str, float]]]:
    """Paired customer-bootstrap intervals of (method - ref) for the :data:`COMPARED` metrics."""
    rng = np.random.default_rng([cfg.seed, 7])
    n = len(actual)
    idx = rng.integers(n, size=(cfg.n_boot, n))

    def stats(e: np.ndarray, p: np.ndarray) -> np.ndarray:
        out = np.empty((cfg.n_boot, len(COMPARED)))
        for b, i in enumerate(idx):
            y, err = actual[i], e[i] - actual[i]
            tot = y.sum()
            out[b] = (np.sqrt(np.mean(err ** 2)), np.mean(np.abs(err)), roc_auc(y > 0, p[i]),
                      abs(err.sum() / tot) if tot else np.nan)
        return out

    base = stats(*methods[ref])
    res = {}
    for name, (e, p) in methods.items():
        if name == ref:
            continue
        d = stats(e, p) - base
        lo, hi = np.nanquantile(d, [cfg.alpha / 2, 1 - cfg.alpha / 2], axis=0)
        res[name] = {m: {"mean": float(np.nanmean(d[:, j])), "low": float(lo[j]),
                         "high": float(hi[j]), "better": bool(hi[j] < 0 if low_better
                                                              else lo[j] > 0)}
                     for j, (m, low_better) in enumerate(COMPARED.items())}
    return res


def _family_forecast(fam: str, cfg: ForecastBenchConfig, cal: Path, panel: pd.DataFrame,
                     customers: np.ndarray, progress: bool) -> list[dict[str, Any]]:
    """Each of the ``members`` fits of ``fam``: its per-customer forecast and timings."""
    ds = open_dataset(cal)
    users = load_users(ds, validate=False) if ds.users_path is not None else None
    span = panel.groupby("user_id")["period"]
    n_steps = int((span.max() - span.min()).max()) + 1
    budget = cfg.budget()
    fc_cfg = ForecastConfig(periods=cfg.holdout_periods, replicates=cfg.replicates,
                            active_window=0, alpha=cfg.alpha, seed=cfg.seed,
                            estimator=cfg.estimator)
    out = []
    for k in range(cfg.members):
        t0 = time.perf_counter()
        pred = BehaviorPredictor(replace(budget.predictor(fam, budget.test_fraction, n_steps),
                                         member=k)).fit(
            panel, tuple(ds.spec.action_names), users, progress=progress)
        fit_s = time.perf_counter() - t0
        starts = build_start_states(pred, panel, ds.spec, customers, cfg.calibration_periods,
                                    users)
        shop = LearnedShop(ShopSimulator(pred, ds.spec, ActivityModel.fit(panel)), starts,
                           ds.spec)
        t0 = time.perf_counter()
        fc = forecast_customers(shop, None, fc_cfg)
        c = fc.customers
        out.append({"expected": c["expected_purchases"].to_numpy(),
                    "p_any": c["p_any_purchase"].to_numpy(),
                    "curve": fc.curve["cumulative_expected_purchases"].to_numpy(),
                    "info": {"fit_seconds": fit_s,
                             "forecast_seconds": time.perf_counter() - t0,
                             "best_epoch": pred.train_result_.best_epoch,
                             "epochs_run": len(pred.train_result_.history),
                             "best_val_loss": min(
                                 (h.get("val_loss", h["train_loss"])
                                  for h in pred.train_result_.history), default=float("nan"))}})
    return out


def _average(fits: list[dict[str, Any]]) -> dict[str, Any]:
    """The members' forecasts averaged (what :func:`envs.forecast.forecast_customers` gives for
    their shops together): means of the per-customer estimates and of the curves."""
    if len(fits) == 1:
        return fits[0]
    out = {key: np.mean([f[key] for f in fits], axis=0) for key in ("expected", "p_any", "curve")}
    info = [f["info"] for f in fits]
    out["info"] = {"members": len(fits),
                   "fit_seconds": sum(i["fit_seconds"] for i in info),
                   "forecast_seconds": sum(i["forecast_seconds"] for i in info),
                   "best_epoch": [i["best_epoch"] for i in info],
                   "epochs_run": [i["epochs_run"] for i in info],
                   "best_val_loss": [i["best_val_loss"] for i in info]}
    return out


def forecast_bench(data: str | Path, config: ForecastBenchConfig | None = None, *,
                   progress: bool = False,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark on dataset folder ``data`` (module docstring).

    Returns:
        JSON-ready dict: the split, ``n_customers``, the actual holdout totals and curve, per
        method its metrics (``methods``), the paired differences with BG/NBD (``vs_bgnbd``)
        and the fitted baseline parameters.

    Example:
        >>> res = forecast_bench("data/online_retail", ForecastBenchConfig())  # doctest: +SKIP
        >>> res["methods"]["bgnbd"]["rmse"]  # doctest: +SKIP
    """
    cfg = config or ForecastBenchConfig()
    say = log or (lambda _msg: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # panel notes (rows after the cut) are expected here
        full = build_panel(open_dataset(data))
        n_periods = int(full["period"].max()) + 1
        c, h = cfg.calibration_periods, cfg.holdout_periods
        if c + h > n_periods:
            raise ConfigError(f"`calibration_periods` + `holdout_periods` = {c + h} exceeds the "
                              f"{n_periods} periods of {data}")
        with tempfile.TemporaryDirectory(prefix="nudgegym-forecast-") as tmp:
            cal = cut_dataset(data, c, Path(tmp) / "calibration")
            panel = build_panel(open_dataset(cal))
            summary = rfm_summary(panel, c)
            customers = summary.index.to_numpy()
            if len(customers) < 2:
                raise ConfigError(f"{data}: fewer than 2 customers purchase in the first {c} "
                                  "periods")
            hold = full[(full["period"] >= c) & (full["period"] < c + h)
                        & full["user_id"].isin(customers)]
            week = pd.crosstab(hold["user_id"], hold["period"],
                               values=(hold["purchases"] > 0).astype(int), aggfunc="sum")
            week = week.reindex(index=customers, columns=range(c, c + h)).fillna(0).to_numpy()
            actual = week.sum(1)
            actual_curve = np.cumsum(week.sum(0))
            methods: dict[str, dict[str, Any]] = {}
            for fam in cfg.families:
                say(f"fitting and forecasting {fam} ...")
                fits = _family_forecast(fam, cfg, cal, panel, customers, progress)
                methods[fam] = _average(fits)
                if len(fits) > 1:
                    methods.update({f"{fam}#{k}": f for k, f in enumerate(fits)})
        params = {}
        for b in cfg.baselines:
            say(f"fitting {b} ...")
            t0 = time.perf_counter()
            model = BTYDBaseline(BTYDConfig(b)).fit(summary, horizon=h)
            curve = np.array([model.expected_purchases(summary, k).sum() for k in range(1, h + 1)])
            methods[b] = {"expected": model.expected_purchases(summary, h),
                          "p_any": model.p_any_purchase(summary, h), "curve": curve,
                          "info": {"fit_seconds": time.perf_counter() - t0}}
            params[b] = model.params_ | {"penalizer": model.penalizer_}
    rows = {name: forecast_metrics(actual, m["expected"], m["p_any"], actual_curve, m["curve"])
            | m["info"] for name, m in methods.items()}
    out: dict[str, Any] = {
        "config": cfg.to_dict(), "n_periods": n_periods,
        "calibration": [0, c - 1], "holdout": [c, c + h - 1],
        "n_customers": int(len(customers)), "purchase_unit": "a period with at least one purchase",
        "actual": {"total": float(actual.sum()), "any_purchase_rate": float((actual > 0).mean()),
                   "curve": actual_curve.tolist()},
        "methods": rows, "curves": {k: m["curve"].tolist() for k, m in methods.items()},
        "baseline_params": params,
    }
    if "bgnbd" in methods and len(methods) > 1:
        say("paired customer bootstrap vs bgnbd ...")
        out["vs_bgnbd"] = _bootstrap(actual, {k: (m["expected"], m["p_any"])
                                              for k, m in methods.items()}, "bgnbd", cfg)
    fams = [f for f in cfg.families if f in rows]
    if fams:
        out["best_family_by_rmse"] = min(fams, key=lambda f: rows[f]["rmse"])
    return out
