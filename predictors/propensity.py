"""Estimated logging propensities: a model of the policy that chose the logged actions.

When a shop's send log has no propensities, off-policy evaluation still needs the probability
with which the logging policy took each logged action (``pscore``). :func:`estimate_propensities`
fits a classifier of the logged action on the observation the policy could see (the features of
:mod:`predictors.features`, plus the period, since campaigns follow a calendar), cross-fitted by
user: each user's propensities come from a model that never saw that user.

What the assumption costs: the estimate is only as good as the features. A logging policy that
used information not in the observation (a holdout list, a manual segment, a calendar the
period does not capture) is misread, and IPS-type estimates are then biased by the ratio of the
true to the estimated propensity; the calibration table shows how well the estimate matches the
observed action frequencies, not whether the features were the policy's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from predictors.contract import DatasetSpec
from predictors.features import FeatureConfig, observations_from_panel

MODELS = ("boosting", "logistic")

#: What an estimated propensity costs, repeated wherever estimated propensities are used.
ASSUMPTION = ("propensities are ESTIMATED from the observation features (the logging policy's "
              "inputs are assumed to be in them); off-policy estimates are unbiased only if "
              "that holds, and are biased where the logging policy used other information")


@dataclass(frozen=True)
class PropensityConfig:
    """Options of :func:`estimate_propensities`.

    Attributes:
        model: ``boosting`` (scikit-learn histogram gradient boosting: thresholds such as
            "no purchase for 6 weeks" are learnt) or ``logistic`` (multinomial logistic
            regression on standardised features).
        n_folds: Cross-fitting folds, split by user.
        clip: Smallest propensity returned (estimates below it are raised to it).
        max_rows: Training rows per fold at most (a random subset beyond it), to bound time.
        seed: Seed of the fold assignment, the subsets and the model.
    """

    model: str = "boosting"
    n_folds: int = 3
    clip: float = 1e-3
    max_rows: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"PropensityConfig.model must be one of {MODELS}; got "
                             f"{self.model!r}")
        if not isinstance(self.n_folds, int) or self.n_folds < 2:
            raise ValueError(f"PropensityConfig.n_folds must be an int >= 2; got "
                             f"{self.n_folds!r}")
        if not (0.0 < self.clip < 0.5):
            raise ValueError(f"PropensityConfig.clip must be in (0, 0.5); got {self.clip!r}")
        if not isinstance(self.max_rows, int) or self.max_rows < 100:
            raise ValueError(f"PropensityConfig.max_rows must be an int >= 100; got "
                             f"{self.max_rows!r}")


@dataclass(frozen=True)
class PropensityEstimate:
    """Cross-fitted estimate of the logging policy on the rows of a panel.

    Attributes:
        action_dist: ``(n, n_actions)`` estimated probability of every action (rows sum to 1).
        pscore: ``(n,)`` estimated probability of the logged action.
        calibration: JSON-ready report (see :func:`calibration_report`).
    """

    action_dist: np.ndarray
    pscore: np.ndarray
    calibration: dict[str, Any]


def propensity_features(panel: pd.DataFrame, spec: DatasetSpec,
                        feature_config: FeatureConfig | None = None) -> np.ndarray:
    """Observation features of every panel row plus the period, ``(n, d + 1)`` float32."""
    obs = observations_from_panel(panel, spec, feature_config)
    return np.concatenate([obs, panel["period"].to_numpy(np.float32)[:, None]], axis=1)


def _make_model(cfg: PropensityConfig):
    if cfg.model == "boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        # Early stopping on a held-out tenth keeps small logs from being memorised.
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1,
                                              max_leaf_nodes=15, min_samples_leaf=40,
                                              l2_regularization=1.0, early_stopping=True,
                                              validation_fraction=0.1, n_iter_no_change=10,
                                              random_state=cfg.seed)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))


def estimate_propensities(panel: pd.DataFrame, spec: DatasetSpec,
                          config: PropensityConfig | None = None,
                          feature_config: FeatureConfig | None = None) -> PropensityEstimate:
    """Estimate the logging policy's action probabilities at every logged panel row.

    Args:
        panel: A panel of :func:`predictors.build_panel` whose every row has a logged action
            (``action_index >= 0``; a dataset with an interventions table fills periods
            without a send with ``none``).
        spec: The dataset spec (catalog).
        config: Estimation options.
        feature_config: Observation options.

    Raises:
        ValueError: A row has no logged action, or only one action is ever logged.

    Example:
        >>> from predictors.contract import ActionSpec
        >>> spec = DatasetSpec(actions=(ActionSpec("none", 0, "none"), ActionSpec("email")))
        >>> rng = np.random.default_rng(0)
        >>> panel = pd.DataFrame({"user_id": np.repeat(np.arange(60), 5),
        ...     "period": np.tile(np.arange(5), 60), "visits": 0, "views": 0, "carts": 0,
        ...     "purchases": rng.integers(0, 2, 300), "favs": 0, "unsubscribes": 0,
        ...     "revenue": 0.0, "action_index": rng.integers(0, 2, 300)})
        >>> est = estimate_propensities(panel, spec, PropensityConfig(model="logistic"))
        >>> est.action_dist.shape, bool(np.allclose(est.action_dist.sum(1), 1))
        ((300, 2), True)
    """
    cfg = config or PropensityConfig()
    action = panel["action_index"].to_numpy(np.int64)
    _check_logged(action, spec)
    x = propensity_features(panel, spec, feature_config)
    rng = np.random.default_rng(cfg.seed)
    users, codes = np.unique(panel["user_id"].to_numpy(), return_inverse=True)
    fold = rng.permutation(len(users)) % cfg.n_folds
    row_fold = fold[codes]
    dist = np.zeros((len(action), spec.n_actions))
    for k in range(cfg.n_folds):
        test, train = row_fold == k, np.flatnonzero(row_fold != k)
        if not test.any():
            continue
        if len(train) > cfg.max_rows:
            train = np.sort(rng.choice(train, cfg.max_rows, replace=False))
        model = _make_model(cfg).fit(x[train], action[train])
        classes = np.asarray(model.classes_, np.int64)
        dist[np.ix_(test, classes)] = model.predict_proba(x[test])
    dist = np.maximum(dist, 0.0)
    # Actions a fold never saw get probability 0 there; clip the logged one and renormalise.
    dist[np.arange(len(action)), action] = np.maximum(dist[np.arange(len(action)), action],
                                                       cfg.clip)
    dist /= dist.sum(axis=1, keepdims=True)
    pscore = np.maximum(dist[np.arange(len(action)), action], cfg.clip)
    report = calibration_report(dist, action, spec.action_names)
    report.update({"model": cfg.model, "n_folds": cfg.n_folds, "clip": cfg.clip,
                   "features": "observation features + period", "rows": len(action),
                   "pscore_min": float(pscore.min()), "pscore_median": float(np.median(pscore))})
    return PropensityEstimate(dist, pscore, report)


def fit_logging_model(panel: pd.DataFrame, spec: DatasetSpec,
                      config: PropensityConfig | None = None,
                      feature_config: FeatureConfig | None = None) -> Any:
    """A classifier of the logged action on the observation features alone.

    Unlike :func:`estimate_propensities` it is fitted once on every logged row (no
    cross-fitting) and reads no period, so it gives the logging policy's action
    probabilities at states the log never holds, such as a simulator's (its ``classes_`` are
    the catalog indices of the actions ever logged; the others have probability 0).

    Raises:
        ValueError: A row has no logged action, or only one action is ever logged.
    """
    cfg = config or PropensityConfig()
    action = panel["action_index"].to_numpy(np.int64)
    _check_logged(action, spec)
    x = observations_from_panel(panel, spec, feature_config)
    rows = np.arange(len(action))
    if len(rows) > cfg.max_rows:
        rows = np.sort(np.random.default_rng(cfg.seed).choice(rows, cfg.max_rows,
                                                              replace=False))
    return _make_model(cfg).fit(x[rows], action[rows])


def _check_logged(action: np.ndarray, spec: DatasetSpec) -> None:
    if len(action) == 0 or (action < 0).any():
        raise ValueError("every panel row needs a logged action (action_index >= 0) to "
                         "estimate propensities; the dataset needs an interventions table")
    seen = np.unique(action)
    if len(seen) < 2:
        raise ValueError(f"only action {spec.action_names[int(seen[0])]!r} is ever logged: "
                         "there is no choice of the logging policy to model")


def calibration_report(action_dist: np.ndarray, action: np.ndarray,
                       names: list[str] | tuple[str, ...], n_bins: int = 10) -> dict[str, Any]:
    """How well estimated action probabilities match the observed action frequencies.

    Returns:
        ``log_loss`` of the estimate and ``log_loss_marginal`` (always predicting the overall
        action shares; a useful estimate is clearly below it), ``ece`` (expected calibration
        error over every action's one-vs-rest probabilities in ``n_bins`` equal-width bins),
        and per action the mean estimated probability and the observed share (``actions``).

    Example:
        >>> d = np.array([[0.8, 0.2], [0.8, 0.2], [0.2, 0.8]])
        >>> calibration_report(d, np.array([0, 0, 1]), ["none", "email"])["actions"]["email"]
        {'observed_share': 0.3333, 'mean_estimate': 0.4}
    """
    n, a = action_dist.shape
    r = np.arange(n)
    eps = 1e-12
    share = np.bincount(action, minlength=a) / n
    ll = float(-np.log(np.maximum(action_dist[r, action], eps)).mean())
    ll0 = float(-np.log(np.maximum(share[action], eps)).mean())
    onehot = np.zeros_like(action_dist)
    onehot[r, action] = 1.0
    p, y = action_dist.ravel(), onehot.ravel()
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    cnt = np.bincount(bins, minlength=n_bins)
    mean_p = np.bincount(bins, p, minlength=n_bins) / np.maximum(cnt, 1)
    mean_y = np.bincount(bins, y, minlength=n_bins) / np.maximum(cnt, 1)
    ece = float((cnt * np.abs(mean_p - mean_y)).sum() / max(cnt.sum(), 1))
    return {
        "log_loss": round(ll, 4), "log_loss_marginal": round(ll0, 4), "ece": round(ece, 4),
        "actions": {str(names[j]): {"observed_share": round(float(share[j]), 4),
                                    "mean_estimate": round(float(action_dist[:, j].mean()), 4)}
                    for j in range(a)},
        "bins": [{"predicted": round(float(mean_p[b]), 4), "observed": round(float(mean_y[b]), 4),
                  "n": int(cnt[b])} for b in range(n_bins) if cnt[b]],
    }
