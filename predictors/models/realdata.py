"""Behavior predictors checked on real data: a randomized e-mail test and two purchase logs.

* :func:`hillstrom_check`: the Hillstrom e-mail experiment (one two-week period per customer,
  arms assigned at random). Each family is fitted on a seeded half of the customers (train plus
  validation) and predicts the other half (its test split). For each e-mail and outcome (visit,
  conversion, spend) the *predicted* average effect, the mean over test customers of the
  prediction under the e-mail minus under ``none``, is set beside the effect *measured* by the
  randomized arms of the same test half (difference of arm means with a normal-approximation
  interval, :func:`difference_in_means`). The visit-uplift ranking of each family is scored by
  the Qini coefficient next to a two-model logistic baseline on the static features, and
  :func:`~predictors.models.hillstrom_uplift.uplift_report` adds Qini / AUUC per e-mail and
  outcome against T- and DR-learner baselines and the effect per customer group.
* :func:`next_period_check`: an order or event log cut into periods (Online Retail weekly,
  Taobao daily). Each family predicts every test user's purchase in each period from the
  periods before it. Metrics are taken on the periods after a user's first one: the panel starts
  a user at their first event, so that first period is active by construction (in an order log
  it always holds a purchase) and is not a forecast.

Every family gets the same budget (:class:`RealDataConfig`); the test split is never used for
early stopping or any choice.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictors.config_checks import check_int, check_number
from predictors.dataset import open_dataset
from predictors.errors import ConfigError, DataValidationError, Problem
from predictors.loaders import load_users
from predictors.models.config import FAMILIES, PredictorConfig
from predictors.models.heterogeneity import ArmEffect, difference_in_means
from predictors.models.hillstrom_uplift import UPLIFT_OUTCOMES, uplift_report
from predictors.models.metrics import log_loss, roc_auc
from predictors.models.predictor import BehaviorPredictor, Predictions
from predictors.models.sequence import PanelTensors, StaticEncoder
from predictors.models.uplift import TwoModelLogistic, qini_coefficient
from predictors.panel import build_panel

#: Hillstrom outcomes: name -> (panel column, Predictions attribute).
HILLSTROM_OUTCOMES = {"visit": ("visits", "p_visit"), "conversion": ("purchases", "p_purchase"),
                      "spend": ("revenue", "expected_revenue")}
#: Hillstrom e-mail actions compared with ``none``.
HILLSTROM_EMAILS = ("mens_email", "womens_email")


@dataclass(frozen=True)
class RealDataConfig:
    """The budget every family gets in a real-data check.

    Attributes:
        families: Families to fit (each one of :data:`FAMILIES`).
        epochs: Maximum training epochs (early stopping on the validation users).
        patience: Early-stopping patience in epochs.
        hidden: Hidden width of every family.
        batch_users: Users per minibatch, whatever the data's number of periods (the
            predictor's ``batch_size`` is this times the longest user history). The data are
            small, so a fixed count of user-periods would leave a one-period set (Hillstrom)
            or a nine-period one (Taobao) with a handful of gradient steps per epoch.
        seed: Seed of the user split, initial weights and minibatch order.
        val_fraction: Validation users (taken from the training half on Hillstrom).
        test_fraction: Test users of the purchase logs (Hillstrom always tests on half).
        alpha: 1 - confidence level of the measured effect intervals.
        n_boot: Hillstrom: bootstrap resamples of the held-out customers for the uplift
            report's intervals (:func:`~predictors.models.hillstrom_uplift.uplift_report`);
            ``-1`` skips that report.
        device: Training device (``cpu``, ``auto`` or ``cuda[:N]``).
        num_threads: Torch intra-op threads while fitting and predicting on the CPU (``0``
            leaves torch's setting); the fitted models do not depend on it.
    """

    families: tuple[str, ...] = FAMILIES
    epochs: int = 12
    patience: int = 3
    hidden: int = 64
    batch_users: int = 32
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    alpha: float = 0.05
    n_boot: int = 200
    device: str = "cpu"
    num_threads: int = 2

    def __post_init__(self) -> None:
        if not self.families:
            raise ConfigError("`families` must name at least one family")
        bad = [f for f in self.families if f not in FAMILIES]
        if bad:
            raise ConfigError(f"`families` must be among {FAMILIES}; got {bad}")
        check_int(self, "batch_users", ge=1)
        check_int(self, "n_boot", ge=-1)
        check_number(self, "alpha", gt=0, lt=1)
        check_number(self, "val_fraction", gt=0, lt=0.5)
        self.predictor("logistic", self.test_fraction)  # validates the rest

    def predictor(self, family: str, test_fraction: float, n_steps: int = 1) -> PredictorConfig:
        """The :class:`PredictorConfig` of ``family`` for histories of up to ``n_steps``."""
        return PredictorConfig(family=family, epochs=self.epochs, patience=self.patience,
                               hidden=self.hidden, batch_size=self.batch_users * max(1, n_steps),
                               seed=self.seed, device=self.device,
                               num_threads=self.num_threads, val_fraction=self.val_fraction,
                               test_fraction=test_fraction)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _open(folder: str | Path) -> tuple[Any, pd.DataFrame, pd.DataFrame | None]:
    ds = open_dataset(folder)
    panel = build_panel(ds)
    users = load_users(ds, validate=False) if ds.users_path is not None else None
    return ds, panel, users


def _fit(cfg: PredictorConfig, panel: pd.DataFrame, names: tuple[str, ...],
         users: pd.DataFrame | None, progress: bool) -> tuple[BehaviorPredictor, dict[str, Any]]:
    t0 = time.perf_counter()
    pred = BehaviorPredictor(cfg).fit(panel, names, users, progress=progress)
    res = pred.train_result_
    info = {"fit_seconds": time.perf_counter() - t0, "best_epoch": res.best_epoch,
            "epochs_run": len(res.history)}
    return pred, info


def _split_of(pred: BehaviorPredictor, data: PanelTensors) -> np.ndarray:
    return pred.split_.set_index("user_id")["split"].reindex(data.user_ids).to_numpy()


def hillstrom_check(folder: str | Path, config: RealDataConfig | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """Predicted vs randomized effects and Qini per family on an imported Hillstrom dataset.

    Args:
        folder: A dataset folder written by ``import_hillstrom`` (one period per customer).
        config: The budget; the test split is half of the customers.
        progress: Show tqdm bars on stderr.

    Returns:
        JSON-ready dict: ``n_test``, ``measured`` (per e-mail and outcome: ``mean``, ``low``,
        ``high``), ``families`` (per family: ``effects`` with ``predicted`` and ``inside``,
        ``n_inside``, ``qini`` per e-mail, fit info), ``two_model_logistic`` (``qini``) and
        ``uplift`` (Qini / AUUC per e-mail and outcome vs meta-learner baselines, and the
        effect per customer group: :func:`~predictors.models.hillstrom_uplift.uplift_report`).

    Example:
        >>> cfg = RealDataConfig(families=("logistic",))
        >>> report = hillstrom_check("data/hillstrom", cfg)  # doctest: +SKIP
    """
    config = config or RealDataConfig()
    ds, panel, users = _open(folder)
    names = tuple(ds.spec.action_names)
    needed = ("none", *HILLSTROM_EMAILS)
    if any(a not in names for a in needed):
        raise ConfigError(f"{folder}: the Hillstrom check needs actions {list(needed)}; the "
                          f"catalog has {list(names)}")
    dup = panel["user_id"].duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataValidationError(Problem("panel", row + 1, "period", "one period per customer "
                                          "(an imported Hillstrom dataset)",
                                          f"a second period of user {panel['user_id'].iloc[row]}"))
    by_user = panel.set_index("user_id")
    out: dict[str, Any] = {"families": {}}
    measured: dict[str, dict[str, ArmEffect]] = {}
    test_ids = np.zeros(0)
    effects: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for fam in config.families:
        pred, info = _fit(config.predictor(fam, 0.5, 1), panel, names, users, progress)
        data = pred.tensors(panel, users)
        split = _split_of(pred, data)
        test = data.subset(np.flatnonzero(split == "test"))
        p = pred.predict_tensors(test)
        rows = by_user.loc[test.user_ids]
        arm = rows["action"].astype(str).to_numpy()
        if not measured:
            test_ids = test.user_ids
            measured = _measured(rows, arm, config.alpha)
            out["n_test"] = int(test.n_users)
            out["train_ids"] = data.user_ids[split != "test"]
        elif not np.array_equal(test.user_ids, test_ids):
            raise RuntimeError("families drew different test halves from one seed")
        info.update(_hillstrom_family(p, names, arm, rows, measured))
        out["families"][fam] = info
        effects[fam] = {e: {o: getattr(p, HILLSTROM_OUTCOMES[o][1])[:, names.index(e)]
                            - getattr(p, HILLSTROM_OUTCOMES[o][1])[:, names.index("none")]
                            for o in UPLIFT_OUTCOMES} for e in HILLSTROM_EMAILS}
    out["measured"] = {e: {o: asdict(m) for o, m in d.items()} for e, d in measured.items()}
    train_ids = out.pop("train_ids")
    out["two_model_logistic"] = _two_model(users, train_ids, test_ids, by_user)
    if config.n_boot >= 0:
        out["uplift"] = uplift_report(users, by_user, train_ids, test_ids, effects,
                                      HILLSTROM_EMAILS, n_boot=config.n_boot,
                                      alpha=config.alpha, seed=config.seed)
    return out


def _measured(rows: pd.DataFrame, arm: np.ndarray,
              alpha: float) -> dict[str, dict[str, ArmEffect]]:
    """Effects of each e-mail vs ``none`` measured by the randomized arms of ``rows``."""
    res: dict[str, dict[str, ArmEffect]] = {}
    for e in HILLSTROM_EMAILS:
        sel = (arm == e) | (arm == "none")
        res[e] = {}
        for o, (col, _) in HILLSTROM_OUTCOMES.items():
            y = rows[col].to_numpy(dtype=np.float64)[sel]
            res[e][o] = difference_in_means(y if o == "spend" else (y > 0).astype(float),
                                            arm[sel] == e, alpha)
    return res


def _hillstrom_family(p: Predictions, names: tuple[str, ...], arm: np.ndarray,
                      rows: pd.DataFrame, measured: dict[str, dict[str, ArmEffect]]
                      ) -> dict[str, Any]:
    """Predicted effects (inside the measured interval or not) and visit Qini of one family."""
    none = names.index("none")
    effects: dict[str, dict[str, Any]] = {}
    qini: dict[str, float] = {}
    n_inside = 0
    visit = rows["visits"].to_numpy() > 0
    for e in HILLSTROM_EMAILS:
        j = names.index(e)
        effects[e] = {}
        for o, (_, attr) in HILLSTROM_OUTCOMES.items():
            arr = getattr(p, attr)
            est = float(np.mean(arr[:, j] - arr[:, none]))
            inside = measured[e][o].contains(est)
            n_inside += inside
            effects[e][o] = {"predicted": est, "inside": inside}
        sel = (arm == e) | (arm == "none")
        uplift = p.p_visit[sel, j] - p.p_visit[sel, none]
        qini[e] = qini_coefficient(uplift, visit[sel], arm[sel] == e)
    return {"effects": effects, "n_inside": int(n_inside), "qini": qini}


def _two_model(users: pd.DataFrame | None, train_ids: np.ndarray, test_ids: np.ndarray,
               by_user: pd.DataFrame) -> dict[str, Any]:
    """Visit Qini of two logistic regressions (e-mail arm, none arm) on the static features,
    fitted on the training half and scored on the test half."""
    enc = StaticEncoder.fit(None if users is None else users[users["user_id"].isin(train_ids)])
    res: dict[str, Any] = {"qini": {}, "n_features": enc.n_features}
    for ids, key in ((train_ids, "train"), (test_ids, "test")):
        res[key] = (enc.transform(users, ids), by_user.loc[ids, "action"].astype(str).to_numpy(),
                    by_user.loc[ids, "visits"].to_numpy() > 0)
    (x_tr, a_tr, y_tr), (x_te, a_te, y_te) = res.pop("train"), res.pop("test")
    for e in HILLSTROM_EMAILS:
        s_tr, s_te = (a_tr == e) | (a_tr == "none"), (a_te == e) | (a_te == "none")
        model = TwoModelLogistic().fit(x_tr[s_tr], y_tr[s_tr], a_tr[s_tr] == e)
        res["qini"][e] = qini_coefficient(model.predict_uplift(x_te[s_te]), y_te[s_te],
                                          a_te[s_te] == e)
    return res


def next_period_check(folder: str | Path, config: RealDataConfig | None = None,
                      progress: bool = False) -> dict[str, Any]:
    """Next-period purchase AUC / log-loss (and revenue error with prices) per family.

    Args:
        folder: A dataset folder (e.g. imported Online Retail or Taobao).
        config: The budget.
        progress: Show tqdm bars on stderr.

    Returns:
        JSON-ready dict: ``n_users`` per split, ``n_rows`` (test rows after the first period),
        ``has_prices``, ``constant`` (the training base rate as prediction) and ``families``
        (per family: ``purchase_auc``, ``purchase_log_loss``, ``purchase_auc_all_rows``,
        ``visit_auc``, with prices ``revenue_nll``, ``revenue_mae_log`` on purchase rows and
        ``expected_revenue_mae`` over all rows, ``auc_minus_logistic`` with its user-level
        bootstrap interval (:func:`paired_auc_bootstrap`), plus fit info).

    Example:
        >>> report = next_period_check("data/online_retail")  # doctest: +SKIP
    """
    config = config or RealDataConfig()
    ds, panel, users = _open(folder)
    names = tuple(ds.spec.action_names) or ("none",)
    prices = bool(ds.spec.has_prices)
    out: dict[str, Any] = {"has_prices": prices, "families": {}}
    scored: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    span = panel.groupby("user_id")["period"]
    n_steps = int((span.max() - span.min()).max()) + 1 if len(panel) else 1
    for fam in config.families:
        pred, info = _fit(config.predictor(fam, config.test_fraction, n_steps), panel, names,
                          users, progress)
        data = pred.tensors(panel, users)
        split = _split_of(pred, data)
        test = data.subset(np.flatnonzero(split == "test"))
        if "constant" not in out:
            out["n_users"] = {s: int((split == s).sum()) for s in ("train", "val", "test")}
            out["constant"] = _constant(data.subset(np.flatnonzero(split == "train")), test,
                                        prices)
        info.update(_logged_metrics(test, pred.predict_tensors(test), prices))
        out["n_rows"] = info.pop("n")
        scored[fam] = info.pop("scored")
        out["families"][fam] = info
    if "logistic" in scored:
        users, y, p_ref = scored["logistic"]
        for fam, (_, _, p) in scored.items():
            if fam != "logistic":
                out["families"][fam]["auc_minus_logistic"] = paired_auc_bootstrap(
                    users, y, p, p_ref, alpha=config.alpha, seed=config.seed)
    return out


def paired_auc_bootstrap(users: np.ndarray, y: np.ndarray, p: np.ndarray, p_ref: np.ndarray,
                         n_boot: int = 200, alpha: float = 0.05,
                         seed: int = 0) -> dict[str, float]:
    """AUC(p) - AUC(p_ref) on the same rows, with a user-level paired bootstrap interval.

    Users (not rows) are resampled with replacement, since one user's periods are correlated;
    the interval holds the ``alpha / 2`` and ``1 - alpha / 2`` percentiles of ``n_boot`` draws.

    Returns:
        ``mean`` (the difference on the data), ``low``, ``high``.

    Example:
        >>> y = np.array([0, 1, 0, 1]); u = np.arange(4)
        >>> paired_auc_bootstrap(u, y, y * 1.0, np.zeros(4), n_boot=20)["mean"]
        0.5
    """
    rng = np.random.default_rng(seed)
    _, inv = np.unique(users, return_inverse=True)
    rows_of = np.split(np.argsort(inv, kind="stable"), np.cumsum(np.bincount(inv))[:-1])
    diffs = []
    for _ in range(n_boot):
        pick = np.concatenate([rows_of[i] for i in rng.integers(0, len(rows_of),
                                                                len(rows_of))])
        diffs.append(roc_auc(y[pick], p[pick]) - roc_auc(y[pick], p_ref[pick]))
    d = np.asarray(diffs)
    d = d[np.isfinite(d)]
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2]) if len(d) else (np.nan, np.nan)
    return {"mean": roc_auc(y, p) - roc_auc(y, p_ref), "low": float(lo), "high": float(hi)}


def _rows(data: PanelTensors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per valid step in (user, step) order: raw ``(n, 7)``, attributed action, step >= 1."""
    _, step = np.nonzero(data.valid)
    return data.raw[data.valid], data.loss_action[data.valid], step >= 1


def _logged_metrics(data: PanelTensors, p: Predictions, prices: bool) -> dict[str, Any]:
    raw, act, later = _rows(data)
    keep = later & (act >= 0)
    r, a = np.flatnonzero(keep), act[keep]
    y = raw[keep, 3] > 0
    users = np.nonzero(data.valid)[0][keep]
    res: dict[str, Any] = {"purchase_auc": roc_auc(y, p.p_purchase[r, a]),
                           "purchase_log_loss": log_loss(y, p.p_purchase[r, a]),
                           "purchase_base_rate": float(y.mean()) if len(y) else float("nan"),
                           "n": int(len(y)), "scored": (users, y, p.p_purchase[r, a])}
    every = np.flatnonzero(act >= 0)
    res["purchase_auc_all_rows"] = roc_auc(raw[every, 3] > 0, p.p_purchase[every, act[every]])
    res["visit_auc"] = roc_auc(raw[keep, 0] > 0, p.p_visit[r, a])
    if prices:
        rev = raw[keep, 6]
        buy = y & (rev > 0)
        mu, sigma = p.revenue_mu[r, a][buy], p.revenue_sigma[r, a][buy]
        logr = np.log(rev[buy])
        res["revenue_nll"] = float(np.mean(np.log(sigma) + 0.5 * ((logr - mu) / sigma) ** 2
                                           + 0.5 * np.log(2 * np.pi)))
        res["revenue_mae_log"] = float(np.mean(np.abs(logr - mu)))
        res["expected_revenue_mae"] = float(np.mean(np.abs(p.expected_revenue[r, a] - rev)))
    return res


def _constant(train: PanelTensors, test: PanelTensors, prices: bool) -> dict[str, Any]:
    """Reference scores of constant predictions fitted on the training users' later periods."""
    raw_tr, _, later_tr = _rows(train)
    raw, _, later = _rows(test)
    rate = float(np.mean(raw_tr[later_tr, 3] > 0))
    y = raw[later, 3] > 0
    res: dict[str, Any] = {"purchase_auc": 0.5, "purchase_log_loss": log_loss(y, np.full(len(y),
                                                                                         rate)),
                           "train_purchase_rate": rate}
    if prices:
        rev_tr = raw_tr[later_tr, 6]
        logr_tr = np.log(rev_tr[(raw_tr[later_tr, 3] > 0) & (rev_tr > 0)])
        mu, sd = float(logr_tr.mean()), float(logr_tr.std())
        rev = raw[later, 6]
        logr = np.log(rev[y & (rev > 0)])
        res["revenue_nll"] = float(np.mean(np.log(sd) + 0.5 * ((logr - mu) / sd) ** 2
                                           + 0.5 * np.log(2 * np.pi)))
        res["revenue_mae_log"] = float(np.mean(np.abs(logr - mu)))
        res["expected_revenue_mae"] = float(np.mean(np.abs(float(rev_tr.mean()) - rev)))
    return res
