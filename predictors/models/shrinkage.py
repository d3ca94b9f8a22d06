"""Hierarchical smoothing of count tables (state x action cells) for the ``markov`` family.

Beta posterior means for binary outcomes and shrunk first and second moments for log revenue,
each cell centred on its state's baseline plus the action's effect in a coarser group of states
(backoff), so thin cells borrow strength without mixing up states and actions.
"""

from __future__ import annotations

import numpy as np

#: Probabilities are kept in ``[P_EPS, 1 - P_EPS]``.
P_EPS = 1e-6
#: Smallest variance of log revenue.
VAR_FLOOR = 1e-4


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of ``p`` clipped to ``[P_EPS, 1 - P_EPS]``."""
    p = np.clip(p, P_EPS, 1 - P_EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


def _group_sum(x: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of ``x`` ``(S, ...)`` by ``group`` ``(S,)``."""
    out = np.zeros((n_groups, *x.shape[1:]))
    np.add.at(out, group, x)
    return out


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def shrink_binary(n: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int,
                  m: float, iterations: int = 3) -> np.ndarray:
    """Smoothed ``P(y | state, action)`` ``(S, A)`` from weighted counts ``n``, ``y`` ``(S, A)``.

    Each cell is a Beta posterior mean centred on ``sigmoid(base[s] + delta[g(s), a])``: the
    state's baseline logit (its pooled rate, shrunk towards its group's, with the actions'
    offsets removed) plus the action's logit effect in the state's group. The group effect is
    observed against expected successes (``sum_s n(s, a) * sigmoid(base[s])``, so the mix of
    states an action was sent to does not leak into its effect) and shrunk towards the action's
    overall effect, itself shrunk towards 0. Baselines and effects are refined ``iterations``
    times (backfitting).

    Example:
        >>> n, y = np.array([[100.0, 0.0]]), np.array([[10.0, 0.0]])
        >>> p = shrink_binary(n, y, np.zeros(1, int), 1, m=10.0)
        >>> round(float(p[0, 0]), 3), round(float(p[0, 1]), 3)  # data; empty cell: the state
        (0.1, 0.1)
    """
    p0 = (y.sum() + 0.5) / (n.sum() + 1.0)
    ns, ys = n.sum(1), y.sum(1)
    ng, yg = _group_sum(n, group, n_groups), _group_sum(y, group, n_groups)
    pg = (yg.sum(1) + m * p0) / (ng.sum(1) + m)
    delta = np.zeros_like(ng)
    for _ in range(iterations):
        offset = _safe_div((n * delta[group]).sum(1), ns)
        base = logit((ys + m * pg[group]) / (ns + m)) - offset
        eg = _group_sum(n * sigmoid(base)[:, None], group, n_groups)
        ea = np.where(ng.sum(0) > 0, _safe_div(eg.sum(0), ng.sum(0)), p0)
        delta_a = logit((yg.sum(0) + m * ea) / (ng.sum(0) + m)) - logit(ea)
        e = np.where(ng > 0, _safe_div(eg, ng), p0)
        centre = sigmoid(logit(e) + delta_a[None, :])
        delta = logit((yg + m * centre) / (ng + m)) - logit(e)
    centre = sigmoid(base[:, None] + delta[group])
    return np.clip((y + m * centre) / (n + m), P_EPS, 1 - P_EPS)


def shrink_lognormal(n: np.ndarray, s1: np.ndarray, s2: np.ndarray, group: np.ndarray,
                     n_groups: int, m: float, iterations: int = 3,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed mean and variance of log revenue ``(S, A)`` from weighted ``n``, sums ``s1`` of
    log revenue and ``s2`` of its square; the same backoff as :func:`shrink_binary`, additive
    on the mean (the action's effect is the shrunk mean residual against the state baseline)."""
    total = n.sum()
    mu0 = s1.sum() / total if total > 0 else 0.0
    v0 = max(s2.sum() / total - mu0 ** 2, VAR_FLOOR) if total > 1 else 1.0

    def post(k, a1, a2, mu_c, v_c):
        mu = (a1 + m * mu_c) / (k + m)
        return mu, np.maximum((a2 + m * (v_c + mu_c ** 2)) / (k + m) - mu ** 2, VAR_FLOOR)

    ng, g1, g2 = (_group_sum(x, group, n_groups) for x in (n, s1, s2))
    mu_g, v_g = post(ng.sum(1), g1.sum(1), g2.sum(1), mu0, v0)
    ns = n.sum(1)
    mu_s, v_s = post(ns, s1.sum(1), s2.sum(1), mu_g[group], v_g[group])
    delta = np.zeros_like(ng)
    for _ in range(iterations):
        base = mu_s - _safe_div((n * delta[group]).sum(1), ns)
        resid = _group_sum(s1 - n * base[:, None], group, n_groups)
        delta_a = resid.sum(0) / (ng.sum(0) + m)
        delta = (resid + m * delta_a[None, :]) / (ng + m)
    return post(n, s1, s2, base[:, None] + delta[group], v_s[:, None])
