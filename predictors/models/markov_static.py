"""Static user features for the count-based ``markov`` family: a per-action offset, linear in
the features, on top of the count tables.

Each binary head's logit and the log-revenue mean of cell ``(s, a)`` for a user with encoded
static features ``x`` become

    table(s, a) + b + x . w + b_a + x . w_a,

fitted after the tables, with the table's value as a fixed offset (a GLM with offset: ridge
logistic regression by L-BFGS for the binary heads, ridge least squares on the residual
for log revenue). The shared ``b, w`` are unpenalised apart from a small ridge; the per-action
``b_a, w_a`` are shrunk towards 0 by ``l2``, so an action's effect varies with the features only
as far as the data say. ``l2`` is picked per head on the validation users from
:data:`STATIC_L2_GRID`, where *no offset* is one of the choices: a head whose validation loss
the features do not improve keeps the tables alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize

#: Ridge strengths tried per head on the validation users (``inf`` = no static offset), strongest
#: first: each fit starts from the previous one's coefficients.
STATIC_L2_GRID = (1.0, 1e-1, 1e-2, 1e-3, float("inf"))
#: Ridge of the shared slopes (keeps the Newton steps well posed with collinear one-hots).
SHARED_L2 = 1e-4
#: Training rows used at most (a seeded subsample beyond it; the offset has few parameters).
MAX_ROWS = 100_000
#: Output channel of each head (the ``markov`` table's layout) and whether it is binary.
HEAD_CHANNEL = {"visit": (0, True), "purchase": (1, True), "revenue": (2, False),
                "unsubscribe": (4, True), "churn": (5, True)}


def design(x: np.ndarray, action: np.ndarray, n_actions: int) -> np.ndarray:
    """``(n, (S + 1) * (A + 1))``: ``[1, x]`` shared, then ``[1, x]`` in the block of the
    row's action (zeros in the other actions' blocks)."""
    xa = np.column_stack([np.ones(len(x)), x]).astype(np.float64)
    out = np.zeros((len(x), n_actions + 1, xa.shape[1]))
    out[:, 0] = xa
    out[np.arange(len(x)), action + 1] = xa
    return out.reshape(len(x), (n_actions + 1) * xa.shape[1])


def _penalty(n_static: int, n_actions: int, l2: float) -> np.ndarray:
    pen = np.full((n_actions + 1, n_static + 1), l2)
    pen[0] = SHARED_L2
    pen[0, 0] = 0.0
    return pen.ravel()


def fit_offset(z: np.ndarray, y: np.ndarray, offset: np.ndarray, weight: np.ndarray,
               pen: np.ndarray, binary: bool, start: np.ndarray | None = None,
               max_iter: int = 200) -> np.ndarray:
    """Coefficients ``(p,)`` of ``offset + z @ coef`` minimising the weighted mean loss (log loss
    if ``binary``, else squared error) plus ``pen / 2 * coef**2``.

    Squared error is solved in closed form; log loss by L-BFGS (scipy) from ``start`` (zeros if
    None), which costs two passes over ``z`` per iteration instead of Newton's ``n p^2``.
    """
    w = weight / weight.sum()
    if not binary:
        a = (z * w[:, None]).T @ z + np.diag(pen)
        return np.linalg.solve(a + 1e-10 * np.eye(len(pen)), z.T @ (w * (y - offset)))

    def loss_grad(c: np.ndarray) -> tuple[float, np.ndarray]:
        eta = offset + z @ c
        p = 0.5 * (1.0 + np.tanh(0.5 * eta))  # a stable sigmoid
        f = float(w @ (np.logaddexp(0.0, eta) - y * eta) + 0.5 * pen @ (c * c))
        return f, z.T @ (w * (p - y)) + pen * c

    x0 = np.zeros(z.shape[1]) if start is None else start
    res = minimize(loss_grad, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": 1e-7})
    return res.x


def _loss(y: np.ndarray, eta: np.ndarray, weight: np.ndarray, binary: bool,
          log_sigma: np.ndarray) -> float:
    if binary:
        ll = np.logaddexp(0.0, eta) - y * eta
    else:
        ll = log_sigma + 0.5 * (y - eta) ** 2 * np.exp(-2 * log_sigma)
    return float(np.sum(weight * ll) / max(weight.sum(), 1e-12))


def head_rows(rows: dict[str, np.ndarray], head: str) -> np.ndarray:
    """Rows of ``rows`` labelled for ``head`` (churn: known label; revenue: a purchase)."""
    if head == "churn":
        return rows["has_churn"]
    if head == "revenue":
        return rows["buy"]
    return np.ones(len(rows["action"]), bool)


def head_target(rows: dict[str, np.ndarray], head: str) -> np.ndarray:
    """The label of ``head`` on every row (log revenue for ``revenue``)."""
    return {"visit": rows["visit"], "purchase": rows["purchase"], "revenue": rows["log_revenue"],
            "unsubscribe": rows["unsubscribe"], "churn": rows["churn"]}[head]


def fit_static(train: dict[str, np.ndarray], val: dict[str, np.ndarray] | None, table: np.ndarray,
               n_actions: int, l2: float, seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """The static offsets of every head.

    Args:
        train: Training rows: ``cell`` (state index), ``action``, ``static`` ``(n, S)``,
            ``weight`` and the labels of :func:`head_target` with the masks of :func:`head_rows`.
        val: The same for the validation users (None: no choice, ``l2`` or ``1e-2``).
        table: The fitted count tables ``(n_states, A, 6)``.
        n_actions: Actions of the catalog.
        l2: Fixed ridge of the per-action terms, or ``0`` to pick it per head on ``val``.
        seed: Seed of the training-row subsample beyond :data:`MAX_ROWS`.

    Returns:
        ``coef`` ``(S + 1, A, 6)`` (row 0 the intercept, channels as the table) and the chosen
        ridge per head (``inf`` where the head keeps no offset).
    """
    n_static = train["static"].shape[1]
    coef = np.zeros((n_static + 1, n_actions, 6))
    chosen: dict[str, float] = {}
    if len(train["action"]) > MAX_ROWS:
        pick = np.sort(np.random.default_rng(seed).choice(len(train["action"]), MAX_ROWS,
                                                          replace=False))
        train = {k: v[pick] for k, v in train.items()}
    grid = STATIC_L2_GRID if (l2 == 0 and val is not None) else ((l2 or 1e-2),)
    # seeded subsample of the training rows (applied by the caller per user, see MarkovNet)
    for head, (ch, binary) in HEAD_CHANNEL.items():
        fit_sets = []
        for d in (train, val) if val is not None else (train,):
            r = head_rows(d, head)
            fit_sets.append((design(d["static"][r], d["action"][r], n_actions),
                             head_target(d, head)[r], table[d["cell"][r], d["action"][r], ch],
                             d["weight"][r], table[d["cell"][r], d["action"][r], 3],
                             d["action"][r]))
        z, y, off, w, _, _ = fit_sets[0]
        if len(y) < 2 * z.shape[1] or (binary and (y.min() == y.max())):
            chosen[head] = float("inf")
            continue
        best: tuple[float, float, Any] = (np.inf, float("inf"), None)
        grid_h = grid if len(fit_sets) > 1 and len(fit_sets[1][1]) else ((l2 or 1e-2),)
        warm = None
        for lam in grid_h:
            c = None if np.isinf(lam) else fit_offset(z, y, off, w,
                                                      _penalty(n_static, n_actions, lam), binary,
                                                      start=warm)
            warm = warm if c is None else c
            if len(grid_h) == 1:
                best = (0.0, lam, c)
                break
            zv, yv, ov, wv, sv, _ = fit_sets[1]
            score = _loss(yv, ov if c is None else ov + zv @ c, wv, binary, sv)
            if score < best[0] - 1e-12:
                best = (score, lam, c)
        chosen[head] = float(best[1])
        if best[2] is not None:
            blocks = best[2].reshape(n_actions + 1, n_static + 1)
            coef[:, :, ch] = (blocks[0][None, :] + blocks[1:]).T
    return coef, chosen
