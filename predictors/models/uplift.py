"""Uplift ranking quality (Qini and uplift curves, their coefficients with paired bootstrap
intervals) and the two-model logistic baseline.

The Qini curve of a ranking (Radcliffe, 2007, "Using control groups to target on predicted
lift", Direct Marketing Analytics Journal) counts, among the top ``k`` customers of the
ranking, the incremental responders: treated responders minus control responders scaled to
the number of treated customers,

    Q(k) = Y_T(k) - Y_C(k) * N_T(k) / N_C(k)     (the control term is 0 while N_C(k) = 0),

where ``N_T(k)``, ``N_C(k)`` are the treated and control customers in the top ``k`` and
``Y_T(k)``, ``Y_C(k)`` the sums of their outcomes. Customers with tied scores enter together
(the curve is linear across a tie), so the curve does not depend on the order within ties.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from predictors.errors import ConfigError


def _check_arrays(score: np.ndarray, y: np.ndarray, treated: np.ndarray) -> tuple[np.ndarray, ...]:
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    treated = np.asarray(treated)
    if score.ndim != 1 or y.shape != score.shape or treated.shape != score.shape:
        raise ValueError("`uplift`, `y` and `treated` must be 1-D of one length; got shapes "
                         f"{score.shape}, {y.shape}, {treated.shape}")
    if not np.all(np.isfinite(score)):
        raise ValueError(f"`uplift` must be finite; got {int((~np.isfinite(score)).sum())} "
                         "non-finite values")
    if treated.dtype != bool:
        if not np.isin(treated, (0, 1)).all():
            raise ValueError("`treated` must be boolean or 0/1")
        treated = treated.astype(bool)
    if not treated.any() or treated.all():
        raise ValueError("`treated` must hold both treated and control customers; got "
                         f"{int(treated.sum())} treated of {len(treated)}")
    return score, y, treated


def qini_curve(uplift: np.ndarray, y: np.ndarray,
               treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve of the ranking by ``uplift`` (highest first), see the module docstring.

    Args:
        uplift: ``(n,)`` predicted uplift (any score: only its order matters).
        y: ``(n,)`` observed outcome (binary or not).
        treated: ``(n,)`` bool, the customer was in the treated arm.

    Returns:
        ``k`` (customers targeted, from 0 to n, one point per distinct score) and ``Q(k)``.

    Example:
        >>> k, q = qini_curve(np.array([.9, .5, .1, .0]), np.array([1, 0, 0, 1]),
        ...                   np.array([1, 0, 1, 0]))
        >>> k.tolist(), q.tolist()
        ([0, 1, 2, 3, 4], [0.0, 1.0, 1.0, 1.0, 0.0])
    """
    score, y, treated = _check_arrays(uplift, y, treated)
    return _qini_curve(score, y, treated)


def _arm_totals(score: np.ndarray, y: np.ndarray,
                treated: np.ndarray) -> tuple[np.ndarray, ...]:
    """Customers and outcome sums per arm among the top ``k`` of the ranking, at the last
    index of each tie group: ``(ends, N_T, N_C, Y_T, Y_C)``."""
    order = np.argsort(-score, kind="stable")
    s, yy, t = score[order], y[order], treated[order]
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each tie group
    return (ends, np.cumsum(t)[ends], np.cumsum(~t)[ends], np.cumsum(yy * t)[ends],
            np.cumsum(yy * ~t)[ends])


def _qini_curve(score: np.ndarray, y: np.ndarray,
                treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ends, n_t, n_c, y_t, y_c = _arm_totals(score, y, treated)
    with np.errstate(divide="ignore", invalid="ignore"):
        control = np.where(n_c > 0, y_c * n_t / n_c, 0.0)
    return np.r_[0, ends + 1], np.r_[0.0, y_t - control]


def _area(k: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum((k[1:] - k[:-1]) * (q[1:] + q[:-1]) / 2.0))


def qini_coefficient(uplift: np.ndarray, y: np.ndarray, treated: np.ndarray) -> float:
    """Normalised Qini coefficient of the ranking by ``uplift``.

    Definition: with ``A(curve)`` the trapezoidal area under a Qini curve over ``k = 0..n``,

        qini = (A(model) - A(random)) / (A(perfect) - A(random)),

    where the random line joins ``(0, 0)`` to ``(n, Q(n))`` (``A(random) = n * Q(n) / 2``) and
    the perfect curve is that of the ranking by ``y`` for treated and ``-y`` for control
    customers (treated responders first, control responders last; Radcliffe's optimum for a
    binary outcome). 0 is no better than random targeting, 1 is the perfect ranking, negative
    is worse than random. This is the normalisation of scikit-uplift's ``qini_auc_score``.

    Args:
        uplift: ``(n,)`` predicted uplift.
        y: ``(n,)`` observed outcome.
        treated: ``(n,)`` bool, the customer was in the treated arm.

    Example:
        >>> y = np.array([1, 0, 0, 0, 1, 0]); t = np.array([1, 1, 1, 0, 0, 0])
        >>> qini_coefficient(y * t - y * (1 - t), y, t)
        1.0
    """
    score, yy, t = _check_arrays(uplift, y, treated)
    return _normalised_area(_qini_curve, score, yy, t)[0]


def uplift_curve(uplift: np.ndarray, y: np.ndarray,
                 treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uplift ("gain") curve of the ranking by ``uplift``: the difference of response rates in
    the top ``k`` times ``k``,

        U(k) = (Y_T(k) / N_T(k) - Y_C(k) / N_C(k)) * k     (a rate is 0 while its arm is empty),

    (Rzepakowski & Jaroszewicz, 2012, "Decision trees for uplift modeling with single and
    multiple treatments", Knowledge and Information Systems 32), one point per distinct score.

    Example:
        >>> k, u = uplift_curve(np.array([.9, .5, .1, .0]), np.array([1, 0, 0, 1]),
        ...                     np.array([1, 0, 1, 0]))
        >>> k.tolist(), u.tolist()
        ([0, 1, 2, 3, 4], [0.0, 1.0, 2.0, 1.5, 0.0])
    """
    score, y, treated = _check_arrays(uplift, y, treated)
    return _uplift_curve(score, y, treated)


def _uplift_curve(score: np.ndarray, y: np.ndarray,
                  treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ends, n_t, n_c, y_t, y_c = _arm_totals(score, y, treated)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_t = np.where(n_t > 0, y_t / n_t, 0.0)
        rate_c = np.where(n_c > 0, y_c / n_c, 0.0)
    return np.r_[0, ends + 1], np.r_[0.0, (rate_t - rate_c) * (ends + 1)]


def _normalised_area(curve, score: np.ndarray, y: np.ndarray, treated: np.ndarray,
                     perfect_area: float | None = None) -> tuple[float, float]:
    """``(A(model) - A(random)) / (A(perfect) - A(random))`` of ``curve`` and A(perfect)."""
    k, q = curve(score, y, treated)
    if perfect_area is None:
        perfect_area = _area(*curve(np.where(treated, y, -y), y, treated))
    random = len(y) * q[-1] / 2.0
    denom = perfect_area - random
    if denom <= 0:
        return float("nan"), perfect_area
    return float((_area(k, q) - random) / denom), perfect_area


def auuc(uplift: np.ndarray, y: np.ndarray, treated: np.ndarray) -> float:
    """Normalised area under the uplift curve (:func:`uplift_curve`), the AUUC.

    Normalised like :func:`qini_coefficient`: ``(A(model) - A(random)) / (A(perfect) -
    A(random))``, with the random line from ``(0, 0)`` to ``(n, U(n))`` and the perfect ranking
    treated responders first, control responders last. 0 is random targeting, 1 that ranking.

    Example:
        >>> y = np.array([1, 0, 0, 0, 1, 0]); t = np.array([1, 1, 1, 0, 0, 0])
        >>> auuc(y * t - y * (1 - t), y, t)
        1.0
    """
    score, yy, t = _check_arrays(uplift, y, treated)
    return _normalised_area(_uplift_curve, score, yy, t)[0]


def uplift_scores(scores: dict[str, np.ndarray], y: np.ndarray, treated: np.ndarray,
                  n_boot: int = 200, alpha: float = 0.05, seed: int = 0,
                  pairs: tuple[tuple[str, str], ...] = ()) -> dict[str, dict[str, float]]:
    """Qini and AUUC of several rankings of the same customers, with bootstrap intervals.

    Customers are resampled with replacement ``n_boot`` times; every ranking is scored on the
    same resample (paired), so a difference of two rankings gets its own interval.

    Args:
        scores: Name -> ``(n,)`` predicted uplift.
        y: ``(n,)`` observed outcome.
        treated: ``(n,)`` bool, the customer was in the treated arm.
        n_boot: Bootstrap resamples (0: point values only, intervals ``nan``).
        alpha: 1 - confidence level of the percentile intervals.
        seed: Seed of the resampling.
        pairs: ``(a, b)`` names whose paired difference ``a - b`` is reported as ``"a-b"``.

    Returns:
        Name (or ``"a-b"``) -> ``qini``, ``qini_low``, ``qini_high``, ``auuc``, ``auuc_low``,
        ``auuc_high``.

    Example:
        >>> rng = np.random.default_rng(0); t = rng.random(2000) < .5; x = rng.random(2000)
        >>> y = (rng.random(2000) < .1 + .4 * t * (x > .5)).astype(float)
        >>> r = uplift_scores({"x": x, "noise": rng.random(2000)}, y, t, n_boot=50,
        ...                   pairs=(("x", "noise"),))
        >>> bool(r["x-noise"]["qini_low"] > 0)
        True
    """
    if not scores:
        raise ValueError("`scores` must name at least one ranking")
    checked = {k: _check_arrays(v, y, treated) for k, v in scores.items()}
    _, yy, t = next(iter(checked.values()))
    for a, b in pairs:
        if a not in scores or b not in scores:
            raise ValueError(f"`pairs` names {a!r}, {b!r}; `scores` has {sorted(scores)}")
    if not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"`n_boot` must be an integer >= 0; got {n_boot!r}")

    def score_all(idx: np.ndarray | None) -> dict[str, tuple[float, float]]:
        y_, t_ = (yy, t) if idx is None else (yy[idx], t[idx])
        if not t_.any() or t_.all():
            return {k: (np.nan, np.nan) for k in checked}
        pq = pu = None
        res = {}
        for k, (s, _, _) in checked.items():
            s_ = s if idx is None else s[idx]
            q, pq = _normalised_area(_qini_curve, s_, y_, t_, pq)
            u, pu = _normalised_area(_uplift_curve, s_, y_, t_, pu)
            res[k] = (q, u)
        return res

    point = score_all(None)
    rng = np.random.default_rng(seed)
    draws = [score_all(rng.integers(0, len(yy), len(yy))) for _ in range(n_boot)]
    out: dict[str, dict[str, float]] = {}
    names = [(k, k, None) for k in checked] + [(f"{a}-{b}", a, b) for a, b in pairs]
    for label, a, b in names:
        rec: dict[str, float] = {}
        for j, metric in enumerate(("qini", "auuc")):
            val = point[a][j] - (point[b][j] if b else 0.0)
            d = np.array([dr[a][j] - (dr[b][j] if b else 0.0) for dr in draws])
            d = d[np.isfinite(d)]
            lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2]) if len(d) else (np.nan, np.nan)
            rec.update({metric: float(val), f"{metric}_low": float(lo),
                        f"{metric}_high": float(hi)})
        out[label] = rec
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3,
                 max_iter: int = 50, tol: float = 1e-8) -> np.ndarray:
    """Ridge logistic regression by iteratively reweighted least squares (Newton).

    Minimises ``mean(logloss) + l2 / 2 * ||w||^2`` (the intercept is not penalised).

    Args:
        x: ``(n, d)`` features.
        y: ``(n,)`` 0/1 labels.
        l2: Ridge penalty on the slopes.
        max_iter: Newton steps at most.
        tol: Stop when the largest coefficient change is below it.

    Returns:
        ``(d + 1,)`` coefficients, intercept first.

    Example:
        >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 1, 0, 1])
        >>> fit_logistic(x, y).shape
        (2,)
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"`x` must be (n, d) and `y` (n,); got {x.shape} and {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("`y` must be 0/1")
    n = len(y)
    xa = np.column_stack([np.ones(n), x])
    pen = np.full(xa.shape[1], l2)
    pen[0] = 0.0
    w = np.zeros(xa.shape[1])
    w[0] = np.log((y.mean() + 1e-9) / (1 - y.mean() + 1e-9))
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(xa @ w)))
        grad = xa.T @ (p - y) / n + pen * w
        hess = (xa * (p * (1 - p))[:, None]).T @ xa / n + np.diag(pen) + 1e-10 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < tol:
            break
    return w


@dataclass
class TwoModelLogistic:
    """Two-model ("T-learner") uplift baseline: one logistic regression per arm.

    ``uplift(x) = P(y | x, treated) - P(y | x, control)``, each fitted by :func:`fit_logistic`.

    Args:
        l2: Ridge penalty of both regressions.
        max_iter: Newton steps at most.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.normal(size=(400, 2))
        >>> t = rng.random(400) < 0.5; y = rng.random(400) < 0.2 + 0.3 * t * (x[:, 0] > 0)
        >>> m = TwoModelLogistic().fit(x, y, t)
        >>> u = m.predict_uplift(np.array([[2.0, 0.0], [-2.0, 0.0]]))
        >>> bool(u[0] > u[1])
        True
    """

    l2: float = 1e-3
    max_iter: int = 50
    coef_treated_: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    coef_control_: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def __post_init__(self) -> None:
        if not (self.l2 >= 0):
            raise ConfigError(f"`l2` must be >= 0; got {self.l2!r}")
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ConfigError(f"`max_iter` must be an integer >= 1; got {self.max_iter!r}")

    def fit(self, x: np.ndarray, y: np.ndarray, treated: np.ndarray) -> TwoModelLogistic:
        """Fit one regression on the treated rows of ``x`` ``(n, d)`` and one on the others."""
        treated = np.asarray(treated, dtype=bool)
        if treated.shape != (len(x),) or not treated.any() or treated.all():
            raise ValueError("`treated` must be (n,) with both arms present")
        y = np.asarray(y, dtype=np.float64)
        self.coef_treated_ = fit_logistic(x[treated], y[treated], self.l2, self.max_iter)
        self.coef_control_ = fit_logistic(x[~treated], y[~treated], self.l2, self.max_iter)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``(n, 2)``: P(y = 1) under control (column 0) and under treatment (column 1)."""
        if not len(self.coef_treated_):
            raise ConfigError("this model is not fitted; call fit() first")
        xa = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=np.float64)])
        return 1.0 / (1.0 + np.exp(-np.column_stack([xa @ self.coef_control_,
                                                      xa @ self.coef_treated_])))

    def predict_uplift(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` P(y | treated) - P(y | control)."""
        p = self.predict_proba(x)
        return p[:, 1] - p[:, 0]
