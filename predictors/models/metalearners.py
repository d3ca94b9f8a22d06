"""Meta-learner baselines of heterogeneous treatment effects on a randomized test (scikit-learn).

* :class:`TLearner`: one gradient-boosting model of the outcome per arm,
  ``tau(x) = mu_1(x) - mu_0(x)`` (Kunzel et al., 2019, "Metalearners for estimating
  heterogeneous treatment effects using machine learning", PNAS 116(10)).
* :class:`DRLearner`: the doubly robust learner (Kennedy, 2023, "Towards optimal doubly robust
  estimation of heterogeneous causal effects", Electronic J. Statistics 17(2)). Outcome models
  ``mu_1``, ``mu_0`` are cross-fitted; each customer gets the pseudo-outcome

      phi = mu_1(x) - mu_0(x) + 1[A = 1] (y - mu_1(x)) / e_1 - 1[A = 0] (y - mu_0(x)) / e_0

  with the *known* assignment probabilities ``e_1``, ``e_0`` of the design, and ``phi`` is
  regressed on the features. Customers of other arms (a third arm of the test) keep only the
  plug-in term ``mu_1 - mu_0``, so the regression uses every customer.

Both are numpy in, numpy out; binary outcomes use classifiers (probabilities), others
regressors. Everything stochastic takes ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from predictors.config_checks import check_int, check_number
from predictors.errors import ConfigError


@dataclass(frozen=True)
class BoostingConfig:
    """Hyperparameters of the scikit-learn histogram gradient boosting models used here.

    Attributes:
        max_iter: Boosting iterations at most (early stopping on a seeded 10% of the rows).
        learning_rate: Shrinkage.
        max_leaf_nodes: Leaves per tree.
        min_samples_leaf: Rows per leaf at least (large: the effects are small and noisy).
        l2: L2 regularisation of the leaf values.
    """

    max_iter: int = 200
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 100
    l2: float = 1.0

    def __post_init__(self) -> None:
        check_int(self, "max_iter", "min_samples_leaf", ge=1)
        check_int(self, "max_leaf_nodes", ge=2)
        check_number(self, "learning_rate", gt=0)
        check_number(self, "l2", ge=0)

    def model(self, binary: bool, seed: int) -> Any:
        """An unfitted classifier (``binary``) or squared-error regressor."""
        kw = {"max_iter": self.max_iter, "learning_rate": self.learning_rate,
              "max_leaf_nodes": self.max_leaf_nodes, "min_samples_leaf": self.min_samples_leaf,
              "l2_regularization": self.l2, "early_stopping": True,
              "validation_fraction": 0.1, "n_iter_no_change": 10, "random_state": seed}
        return HistGradientBoostingClassifier(**kw) if binary else \
            HistGradientBoostingRegressor(**kw)


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0.0, 1.0)).all())


#: A binary outcome with fewer rows of its rarer class is modelled by its mean (too few to
#: split off an early-stopping set, let alone to learn how it varies).
MIN_CLASS_ROWS = 20


def _fit_outcome(cfg: BoostingConfig, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    binary = _is_binary(y)
    if binary and min(y.sum(), len(y) - y.sum()) < MIN_CLASS_ROWS:
        return float(y.mean()) if len(y) else 0.0
    return cfg.model(binary, seed).fit(x, y.astype(int) if binary else y)


def _predict_outcome(model: Any, x: np.ndarray) -> np.ndarray:
    if isinstance(model, float):
        return np.full(len(x), model)
    if hasattr(model, "predict_proba"):
        return model.predict_proba(x)[:, 1]
    return model.predict(x)


def _check(x: np.ndarray, y: np.ndarray, arm: np.ndarray) -> tuple[np.ndarray, ...]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    arm = np.asarray(arm)
    if x.ndim != 2 or y.shape != (len(x),) or arm.shape != (len(x),):
        raise ValueError(f"`x` must be (n, d), `y` and `arm` (n,); got {x.shape}, {y.shape}, "
                         f"{arm.shape}")
    if not np.isin(arm, (-1, 0, 1)).all():
        raise ValueError("`arm` must hold 1 (treated), 0 (control) or -1 (another arm)")
    for a, name in ((1, "treated"), (0, "control")):
        if (arm == a).sum() < 2:
            raise ValueError(f"`arm` must hold >= 2 {name} rows; got {int((arm == a).sum())}")
    if not np.isfinite(y).all():
        raise ValueError("`y` must be finite")
    return x, y, arm.astype(int)


@dataclass
class TLearner:
    """Two outcome models, one per arm, on the treated (``arm == 1``) and control (``0``) rows.

    Args:
        boosting: The gradient boosting hyperparameters.
        seed: Seed of the early-stopping split of each model.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.normal(size=(2000, 2))
        >>> arm = rng.integers(0, 2, 2000)
        >>> y = (rng.random(2000) < 0.1 + 0.3 * arm * (x[:, 0] > 0)).astype(float)
        >>> m = TLearner(BoostingConfig(max_iter=20)).fit(x, y, arm)
        >>> u = m.predict_uplift(np.array([[2.0, 0], [-2.0, 0]]))
        >>> bool(u[0] > u[1])
        True
    """

    boosting: BoostingConfig = field(default_factory=BoostingConfig)
    seed: int = 0
    models_: tuple[Any, Any] | None = field(default=None, repr=False)

    def fit(self, x: np.ndarray, y: np.ndarray, arm: np.ndarray) -> TLearner:
        """Fit ``mu_1`` on ``arm == 1`` and ``mu_0`` on ``arm == 0`` (other rows are unused)."""
        x, y, arm = _check(x, y, arm)
        self.models_ = (_fit_outcome(self.boosting, x[arm == 0], y[arm == 0], self.seed),
                        _fit_outcome(self.boosting, x[arm == 1], y[arm == 1], self.seed + 1))
        return self

    def predict_uplift(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` ``mu_1(x) - mu_0(x)``."""
        if self.models_ is None:
            raise ConfigError("this model is not fitted; call fit() first")
        x = np.asarray(x, dtype=np.float64)
        return _predict_outcome(self.models_[1], x) - _predict_outcome(self.models_[0], x)


@dataclass
class DRLearner:
    """Doubly robust learner with known propensities (see the module docstring).

    Args:
        boosting: Hyperparameters of the outcome models and of the final regression.
        n_folds: Cross-fitting folds of the outcome models (each row's ``mu`` comes from the
            models fitted on the other folds).
        seed: Seed of the folds and of every model.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.normal(size=(3000, 2))
        >>> arm = rng.integers(-1, 2, 3000)
        >>> y = (rng.random(3000) < 0.1 + 0.3 * (arm == 1) * (x[:, 0] > 0)).astype(float)
        >>> m = DRLearner(BoostingConfig(max_iter=20)).fit(x, y, arm, 1 / 3, 1 / 3)
        >>> u = m.predict_uplift(np.array([[2.0, 0], [-2.0, 0]]))
        >>> bool(u[0] > u[1])
        True
    """

    boosting: BoostingConfig = field(default_factory=BoostingConfig)
    n_folds: int = 2
    seed: int = 0
    model_: Any = field(default=None, repr=False)
    pseudo_outcome_: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_int(self, "n_folds", ge=2)

    def fit(self, x: np.ndarray, y: np.ndarray, arm: np.ndarray,
            pscore_treated: float | np.ndarray, pscore_control: float | np.ndarray) -> DRLearner:
        """Cross-fit ``mu_1``, ``mu_0``, build the pseudo-outcomes and regress them on ``x``.

        Args:
            x: ``(n, d)`` features.
            y: ``(n,)`` outcome.
            arm: ``(n,)`` 1 treated, 0 control, -1 another arm of the test.
            pscore_treated: Probability of the treated arm (scalar or ``(n,)``), in (0, 1).
            pscore_control: Probability of the control arm (scalar or ``(n,)``), in (0, 1).
        """
        x, y, arm = _check(x, y, arm)
        e1 = np.broadcast_to(np.asarray(pscore_treated, dtype=np.float64), y.shape)
        e0 = np.broadcast_to(np.asarray(pscore_control, dtype=np.float64), y.shape)
        for e, name in ((e1, "pscore_treated"), (e0, "pscore_control")):
            if not ((e > 0) & (e < 1)).all():
                raise ValueError(f"`{name}` must be in (0, 1); got min {e.min()}, max {e.max()}")
        rng = np.random.default_rng(self.seed)
        fold = rng.permutation(len(y)) % self.n_folds
        mu1, mu0 = np.zeros(len(y)), np.zeros(len(y))
        for k in range(self.n_folds):
            out, fit = fold == k, fold != k
            for a, mu in ((1, mu1), (0, mu0)):
                rows = fit & (arm == a)
                mu[out] = _predict_outcome(
                    _fit_outcome(self.boosting, x[rows], y[rows], self.seed + 2 * k + a), x[out])
        phi = mu1 - mu0 + (arm == 1) * (y - mu1) / e1 - (arm == 0) * (y - mu0) / e0
        self.pseudo_outcome_ = phi
        self.model_ = self.boosting.model(False, self.seed + 2 * self.n_folds).fit(x, phi)
        return self

    def predict_uplift(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` the regression of the pseudo-outcome at ``x``."""
        if self.model_ is None:
            raise ConfigError("this model is not fitted; call fit() first")
        return self.model_.predict(np.asarray(x, dtype=np.float64))
