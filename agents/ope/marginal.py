"""Long-horizon sequential estimators whose bootstrap refits every model: linear FQE, marginal
importance sampling (MIS), and doubly robust estimators on top of the linear FQE.

Notation as in :mod:`agents.ope.sequential`: user ``i``, period ``t < H``, features
``x_it = [1, standardised obs_it]`` (the scaling comes from all logged rows), per-step weight
``w_it = pi(a_it | s_it) / p_it``, cumulative weight ``rho_it``, discount ``gamma``.

* **Linear FQE** (``fqe-lin``): one ridge regression per period and action,
  ``q_t(x, a) = x . beta_ta``, fitted backwards from ``t = H - 1`` on the targets
  ``r_it + gamma v_{t+1}(s_i,t+1)`` with ``v_t(s) = sum_a pi(a | s) q_t(s, a)``;
  ``V = mean_i v_0(s_i0)``. Reference: Le, Voloshin & Yue, ICML 2019 (FQE); finite-horizon
  linear form as in Duan, Jia & Wang, "Minimax-optimal off-policy evaluation with linear
  function approximation", ICML 2020.
* **Marginal importance sampling** (``mis``): weights on the state distribution instead of
  the trajectory. The ratio ``mu_t(s) = d^pi_t(s) / d^0_t(s)`` of the target's and the logging
  policy's period-``t`` state distributions obeys
  ``mu_{t+1}(s') = E_0[mu_t(s_t) w_t | s_{t+1} = s']`` (``mu_0 = 1``: both start from the same
  users), so each period's ratio is a ridge regression of ``mu_t w_t`` on the next period's
  features, clipped at 0 and rescaled to mean 1. ``V = sum_t gamma^t sum_i mu_it w_it r_it /
  sum_i mu_it w_it``. This is the recursive per-period estimate of Xie, Ma & Wang,
  "Towards optimal off-policy evaluation for reinforcement learning with marginalized
  importance sampling", NeurIPS 2019, with a linear regression in place of their tables. It
  is exact when the observation is a Markov state and the ratio is linear in the features.
* **Marginal DR** (``mdr``): ``V = mean_i v_0(s_i0) + sum_t gamma^t sum_i mu_it w_it
  (r_it + gamma v_{t+1}(s_i,t+1) - q_t(s_it, a_it)) / sum_i mu_it w_it``, right when either
  the ratios or the Q-function are (Kallus & Uehara, "Double reinforcement learning for
  efficient off-policy evaluation in Markov decision processes", JMLR 2020).
* **Per-decision DR with linear FQE** (``dr-lin``): Jiang & Li's sequential DR
  (:class:`agents.ope.sequential.SequentialDR`) with ``q_t`` from the linear FQE.
* **Weighted per-decision DR** (``wdr-lin``): the same terms with each period's cumulative
  weights self-normalised, ``rho_it / mean_j rho_jt`` (and ``rho_i,t-1`` likewise), as in
  Thomas & Brunskill's weighted doubly robust estimator (ICML 2016). Consistent (its bias is
  O(1/n)) rather than unbiased, and far less variable when a few users carry most of the
  trajectory weight, as for policies that leave the logging rule early.

**Intervals** (``kind="refit"``): each bootstrap replicate gives every user a Poisson(1)
weight and refits every regression (Q and ratios) on the weighted users; all policies share
the replicates, so differences between policies are paired (:func:`joint_replicates`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from agents.ope.base import Interval
from agents.ope.data import LoggedData, target_action_dist
from agents.policy import Policy
from predictors import check_number

__all__ = ["MARGINAL_ESTIMATORS", "JointReplicates", "MarginalConfig", "joint_replicates",
           "marginal_interval"]

#: Estimators of this module, plus ``logging`` (the logged policy's own mean return).
MARGINAL_ESTIMATORS = ("fqe-lin", "mis", "mdr", "dr-lin", "wdr-lin")
_CELLS = 10_000_000  # replicate x user x period cells held at once per array


@dataclass(frozen=True)
class MarginalConfig:
    """Options of the linear FQE / MIS / marginal DR estimators.

    Attributes:
        gamma: Discount factor in ``[0, 1]``.
        alpha: Ridge penalty of the ratio regressions and of the pooled Q regression (all
            actions of a period together), in rows; the intercept is not penalised.
        shrinkage: Each action's Q coefficients are shrunk toward the pooled ones with this
            penalty (in rows, intercept included), so rarely logged actions borrow from the
            others instead of extrapolating.
        max_ratio: Cap of the estimated state ratios ``mu_t`` (after rescaling to mean 1).
    """

    gamma: float = 1.0
    alpha: float = 1.0
    shrinkage: float = 1.0
    max_ratio: float = 100.0

    def __post_init__(self) -> None:
        check_number(self, "gamma", ge=0, le=1)
        check_number(self, "alpha", gt=0)
        check_number(self, "shrinkage", ge=0)
        check_number(self, "max_ratio", ge=1)


@dataclass(frozen=True)
class JointReplicates:
    """Estimates of several policies on the same data and the same bootstrap replicates.

    Attributes:
        policies: Policy names, in column order; ``"logging"`` is the logged policy itself
            (its on-policy mean return, the same for every estimator).
        estimators: Estimator names.
        point: ``(n_estimators, n_policies)`` estimates on the full data.
        boot: ``(n_boot, n_estimators, n_policies)`` estimates on the replicates.
        n_users: Users (bootstrap units).
    """

    policies: tuple[str, ...]
    estimators: tuple[str, ...]
    point: np.ndarray
    boot: np.ndarray
    n_users: int

    def interval(self, estimator: str, policy: str, alpha: float = 0.05) -> Interval:
        """Percentile interval of one estimate."""
        e, p = self.estimators.index(estimator), self.policies.index(policy)
        low, high = np.quantile(self.boot[:, e, p], [alpha / 2, 1 - alpha / 2])
        return Interval(float(self.point[e, p]), float(low), float(high), kind="refit")


class _Panel:
    """Logged rows as ``(n_users, H)`` arrays with the regression features and row groups."""

    def __init__(self, data: LoggedData) -> None:
        traj = data.trajectories()
        self.alive = traj.alive
        rows = np.maximum(traj.index, 0)
        self.rows = rows
        obs = (np.zeros((data.n_rounds, 0)) if data.obs is None
               else np.asarray(data.obs, dtype=np.float64).reshape(data.n_rounds, -1))
        mu, sd = obs.mean(axis=0), obs.std(axis=0)
        keep = sd > 0
        z = (obs[:, keep] - mu[keep]) / sd[keep]
        x = np.hstack([np.ones((data.n_rounds, 1)), z])
        self.x = x[rows] * self.alive[..., None]  # (N, H, p)
        self.action = data.action[rows]
        self.reward = data.reward[rows] * self.alive
        self.pscore = data.pscore[rows]
        self.n_users, self.horizon = traj.index.shape
        self.n_actions = data.n_actions
        self.p = x.shape[1]
        self.cells = [[np.flatnonzero(self.alive[:, t] & (self.action[:, t] == a))
                       for a in range(data.n_actions)] for t in range(self.horizon)]

    def gathered(self, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Target probabilities ``(N, H, A)`` and per-step weights ``(N, H)``."""
        d = dist[self.rows] * self.alive[..., None]
        pi_logged = np.take_along_axis(d, self.action[..., None], axis=2)[..., 0]
        return d, np.where(self.alive, pi_logged / self.pscore, 0.0)


def _gram_inverses(x: np.ndarray, weights: np.ndarray, pen: np.ndarray) -> np.ndarray:
    """``(b, p, p)`` inverses of ``x^T diag(w_b) x + diag(pen)``; x ``(n, p)``, weights
    ``(n, b)`` (products in float32, inverses in float64)."""
    x32, w32 = x.astype(np.float32), weights.astype(np.float32)
    g = np.stack([(x32 * w32[:, k, None]).T @ x32 for k in range(weights.shape[1])])
    return np.linalg.inv(g.astype(np.float64) + np.diag(pen))


def _inverses(panel: _Panel, weights: np.ndarray, config: MarginalConfig) -> tuple[list, list]:
    """Per-replicate inverse ridge Gram matrices: by period and action (Q, shrunk toward the
    pooled fit) and by period (pooled Q and mu)."""
    pen = np.full(panel.p, config.alpha)
    pen[0] = 1e-6
    shrink = np.full(panel.p, max(config.shrinkage, 1e-6))
    q_inv, m_inv = [], []
    for t in range(panel.horizon):
        x = panel.x[:, t]
        q_inv.append([_gram_inverses(x[idx], weights[idx], shrink) for idx in panel.cells[t]])
        m_inv.append(_gram_inverses(x, weights * panel.alive[:, t, None], pen))
    return q_inv, m_inv


def _policy_values(panel: _Panel, dist: np.ndarray, weights: np.ndarray, q_inv: list,
                   m_inv: list, config: MarginalConfig) -> np.ndarray:
    """``(b, 5)`` estimates (fqe-lin, mis, mdr, dr-lin, wdr-lin) of one policy; weights
    ``(N, b)``.

    Sums over users of terms linear in a replicate's coefficients ``beta`` are taken as
    ``(features^T weights) . beta`` (matrix products), the rest elementwise on ``(N, b)``.
    """
    d, w = panel.gathered(dist)
    gamma, horizon, n_act, p = config.gamma, panel.horizon, panel.n_actions, panel.p
    n, b = weights.shape
    total = weights.sum(axis=0)
    alive = panel.alive.astype(np.float64)
    full = bool(panel.alive.all())
    disc = gamma ** np.arange(horizon)
    wa_sum = weights.T @ alive  # (b, H)
    # forward: mw_t = weight * mu_t * w_t (N, b) per period, and the MIS estimate
    mws = np.empty((horizon, n, b))
    mis = np.zeros(b)
    mu = np.ones((n, b))
    for t in range(horizon):
        mw = mws[t]
        np.multiply(weights, mu, out=mw)
        mw *= w[:, t, None]
        norm = mw.sum(axis=0)
        mis += disc[t] * np.divide(panel.reward[:, t] @ mw, norm, out=np.zeros(b),
                                   where=norm > 0)
        if t + 1 < horizon:
            x1 = panel.x[:, t + 1]
            rhs = x1.T @ (mw if full else mw * alive[:, t + 1, None])  # (p, b)
            mu = x1 @ np.einsum("bpq,qb->pb", m_inv[t + 1], rhs)
            np.maximum(mu, 0.0, out=mu)
            if not full:
                mu *= alive[:, t + 1, None]
            scale = np.einsum("nb,nb->b", weights, mu) / np.maximum(wa_sum[:, t + 1], 1e-12)
            mu /= np.where(scale > 0, scale, 1.0)
            np.minimum(mu, config.max_ratio, out=mu)
    # backward: linear FQE, and the DR corrections that need q_t and v_{t+1}
    rho = np.cumprod(np.where(panel.alive, w, 1.0), axis=1) * alive
    rho_prev = np.hstack([np.ones((n, 1)), rho[:, :-1]]) * alive
    v_next = np.zeros((n, b))
    mdr_corr, dr = np.zeros(b), (weights.T @ (rho * panel.reward)) @ disc
    # self-normalised per-decision weights: rho_t / mean_i rho_t (per replicate)
    rho_norm = np.maximum(weights.T @ rho, 1e-300) / total[:, None]  # (b, H)
    prev_norm = np.maximum(weights.T @ rho_prev, 1e-300) / total[:, None]
    wdr = ((weights.T @ (rho * panel.reward)) / rho_norm) @ disc
    beta = np.zeros((n_act, p, b))
    rows = np.arange(n)
    for t in range(horizon - 1, -1, -1):
        x = panel.x[:, t]
        y = v_next
        if gamma != 1.0:
            y *= gamma
        if not full and t + 1 < horizon:
            y *= alive[:, t + 1, None]
        y += panel.reward[:, t, None]
        wy = weights * y
        rhs = [x[idx].T @ wy[idx] for idx in panel.cells[t]]  # (p, b) per action
        pooled = np.einsum("bpq,qb->pb", m_inv[t], sum(rhs))
        for a in range(n_act):
            beta[a] = np.einsum("bpq,qb->pb", q_inv[t][a], rhs[a] + config.shrinkage * pooled)
        flat = beta.reshape(n_act * p, b)
        psi = (d[:, t, :, None] * x[:, None, :]).reshape(n, -1)  # pi(a|s) x, (N, A p)
        phi = np.zeros((n, n_act, p))
        phi[rows, panel.action[:, t]] = x  # onehot(a_t) x
        phi = phi.reshape(n, -1)
        v = psi @ flat
        y -= phi @ flat  # y - q(s_t, a_t)
        mw = mws[t]
        norm = mw.sum(axis=0)
        corr = np.einsum("nb,nb->b", mw, y)
        mdr_corr += disc[t] * np.divide(corr, norm, out=np.zeros(b), where=norm > 0)
        # sum_i weight_i (rho_i,t-1 psi_i - rho_it phi_i), the q-part per logged action's rows
        q_part = np.stack([-(x[idx] * rho[idx, t, None]).T @ weights[idx]
                           for idx in panel.cells[t]]).reshape(n_act * p, b)
        v_part = (psi * rho_prev[:, t, None]).T @ weights  # (A p, b)
        dr += disc[t] * np.einsum("kb,kb->b", q_part + v_part, flat)
        lin_w = q_part / rho_norm[:, t] + v_part / prev_norm[:, t]
        wdr += disc[t] * np.einsum("kb,kb->b", lin_w, flat)
        v_next = v
    fqe = np.einsum("kb,kb->b", psi.T @ weights, flat) / total
    return np.column_stack([fqe, mis, fqe + mdr_corr, dr / total, wdr / total])


def _logging_value(panel: _Panel, weights: np.ndarray, gamma: float) -> np.ndarray:
    disc = gamma ** np.arange(panel.horizon)
    return ((panel.reward * disc).sum(axis=1) @ weights) / weights.sum(axis=0)


def joint_replicates(data: LoggedData, policies: Mapping[str, Policy | np.ndarray],
                     config: MarginalConfig | None = None, *, n_boot: int = 200,
                     seed: int = 0, estimators: Sequence[str] = MARGINAL_ESTIMATORS,
                     ) -> JointReplicates:
    """Every estimator of every policy, plus the logging policy, on shared refit replicates.

    Args:
        data: Logged trajectories (``user_id``, ``time_step``).
        policies: Name -> target policy or its ``(n, n_actions)`` probabilities.
        config: Options.
        n_boot: Bootstrap replicates (Poisson(1) user weights, every model refitted).
        seed: Seed of the weights.
        estimators: Subset of :data:`MARGINAL_ESTIMATORS`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> n = 400
        >>> data = LoggedData(action=rng.integers(0, 2, n), reward=rng.random(n),
        ...     pscore=np.full(n, 0.5), n_actions=2, obs=rng.random((n, 1)),
        ...     user_id=np.repeat(np.arange(200), 2), time_step=np.tile([0, 1], 200))
        >>> rep = joint_replicates(data, {"a0": np.tile([1.0, 0.0], (n, 1))}, n_boot=20)
        >>> rep.boot.shape
        (20, 5, 2)
    """
    config = config or MarginalConfig()
    unknown = [e for e in estimators if e not in MARGINAL_ESTIMATORS]
    if unknown or not estimators:
        raise ValueError(f"`estimators` must be a non-empty subset of {MARGINAL_ESTIMATORS}; "
                         f"got {list(estimators)}")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ValueError(f"`n_boot` must be an integer >= 2; got {n_boot!r}")
    if "logging" in policies:
        raise ValueError("`policies` must not use the name 'logging' (the logged policy)")
    panel = _Panel(data)
    dists = {name: target_action_dist(p, data) for name, p in policies.items()}
    cols = [MARGINAL_ESTIMATORS.index(e) for e in estimators]
    rng = np.random.default_rng(seed)
    weights_all = np.hstack([np.ones((panel.n_users, 1)),
                             rng.poisson(1.0, (panel.n_users, n_boot)).astype(np.float64)])
    chunk = max(1, _CELLS // (panel.n_users * panel.horizon))
    out = np.empty((n_boot + 1, len(estimators), len(dists) + 1))
    for start in range(0, n_boot + 1, chunk):
        wts = weights_all[:, start:start + chunk]
        stop = start + wts.shape[1]
        q_inv, m_inv = _inverses(panel, wts, config)
        for j, dist in enumerate(dists.values()):
            out[start:stop, :, j] = _policy_values(panel, dist, wts, q_inv, m_inv,
                                                   config)[:, cols]
        out[start:stop, :, -1] = _logging_value(panel, wts, config.gamma)[:, None]
    return JointReplicates(policies=(*dists, "logging"), estimators=tuple(estimators),
                           point=out[0], boot=out[1:], n_users=panel.n_users)


def marginal_interval(data: LoggedData, policy: Policy | np.ndarray, estimator: str = "mdr",
                      config: MarginalConfig | None = None, *, alpha: float = 0.05,
                      n_boot: int = 200, seed: int = 0) -> Interval:
    """One estimator's estimate of one policy with its refit bootstrap interval."""
    rep = joint_replicates(data, {"target": policy}, config, n_boot=n_boot, seed=seed,
                           estimators=(estimator,))
    return rep.interval(estimator, "target", alpha)
