"""DM and DR intervals with the ridge reward model refitted on every bootstrap resample of users.

A reward model fitted once and held fixed gives an interval that ignores the model's fitting
variance (``kind="conditional"``); refitting it on every resample of users covers it
(``kind="refit"``). Done literally, a resample is a table of copied rows, split into two
cross-fitting folds by copy, and the ridge fits and the estimates run on it: with 200 resamples
of a 5,000 x 52 log that took minutes. :func:`refit_intervals` gives the same numbers (up to
floating-point rounding; a test compares them) without copying a row:

* A resample is a count of copies per user and a fold per copy, drawn exactly as the literal
  computation draws them (the same generator calls).
* A ridge regression needs only the Gram matrix and cross-product of its training rows, per
  action (:func:`agents.ope.reward_model.ridge_from_moments`). Those are sums over (user,
  action) pairs, computed once; a fold's are the pairs' moments weighted by the number of the
  user's copies that the fold trains on.
* The per-row terms of DM and DR are affine in the reward estimates. So the summed terms of a
  user's copies, some scored by one fold's model and some by the other's, equal the number of
  copies times the user's rows' terms at the count-weighted mean of the two models' estimates:
  one pass of the estimator over the original rows per resample.

Where the pairs' moments would exceed ``max_moment_bytes`` (many users and features; also logs
without user ids, where every row is its own unit), it falls back to the literal computation.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from agents.ope.base import Interval
from agents.ope.data import LoggedData
from agents.ope.one_step import DM, DR
from agents.ope.reward_model import (
    RidgeRewardModel,
    cross_fit_rewards,
    make_folds,
    ridge_from_moments,
)

__all__ = ["refit_intervals"]

#: The reward model the intervals refit (the one ``nudgegym ope`` holds fixed for DM / DR).
_MODEL = RidgeRewardModel()
_FOLDS = 2


def refit_intervals(logged: LoggedData, dists: dict[str, np.ndarray], *, n_boot: int,
                    seed: int, alpha: float = 0.05,
                    max_moment_bytes: int = 512 * 2**20) -> dict[str, tuple[Interval, Interval]]:
    """DM and DR of every policy with the ridge reward model cross-fitted anew on each
    bootstrap resample of users (of rows where there are no user ids), ``kind="refit"``.

    The reward model does not depend on the target policy, so each resample's model serves
    every policy (and the policies' estimates share their resamples).

    Args:
        logged: The logged decisions.
        dists: Policy name -> ``(n_rounds, n_actions)`` target action probabilities.
        n_boot: Bootstrap resamples.
        seed: Seed of the resamples and their folds.
        alpha: One minus the intervals' coverage.
        max_moment_bytes: Memory the per-(user, action) moments may take; above it the
            resamples are built as copied rows instead (same numbers, slower).
    """
    groups = logged.user_id if logged.user_id is not None else np.arange(logged.n_rounds)
    _, inverse = np.unique(groups, return_inverse=True)
    ests = (DM(), DR())
    n_obs = 0 if logged.obs is None else int(np.prod(logged.obs.shape[1:]))
    n_pairs = len(np.unique(inverse * logged.n_actions + logged.action))
    if n_pairs * (n_obs + 1) * (n_obs + 2) // 2 * 8 <= max_moment_bytes:
        boots = _replicates_from_moments(logged, dists, inverse, ests, n_boot, seed)
    else:
        boots = _replicates_from_copies(logged, dists, inverse, ests, n_boot, seed)
    q = cross_fit_rewards(logged, _MODEL, n_folds=_FOLDS, seed=seed)
    out = {}
    for j, (name, dist) in enumerate(dists.items()):
        ivs = []
        for k, e in enumerate(ests):
            low, high = np.quantile(boots[:, j, k], [alpha / 2, 1 - alpha / 2])
            ivs.append(Interval(e.estimate(logged, dist, q), float(low), float(high), "refit"))
        out[name] = (ivs[0], ivs[1])
    return out




def _replicates_from_copies(logged: LoggedData, dists: dict[str, np.ndarray],
                            inverse: np.ndarray, ests: tuple, n_boot: int,
                            seed: int) -> np.ndarray:
    """``(n_boot, n_policies, 2)`` estimates on resamples built as copied rows."""
    rng = np.random.default_rng([seed, 7])
    members = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[members], np.arange(inverse.max() + 2))
    n_groups = len(starts) - 1
    boots = np.empty((n_boot, len(dists), len(ests)))
    for b in range(n_boot):
        pick = rng.integers(0, n_groups, n_groups)             # the users drawn
        rows = np.concatenate([members[starts[g]:starts[g + 1]] for g in pick])
        copy = np.repeat(np.arange(n_groups), starts[pick + 1] - starts[pick])
        sub = replace(logged.subset(rows), user_id=copy, time_step=np.zeros(len(rows), int))
        q = cross_fit_rewards(sub, _MODEL, n_folds=_FOLDS, seed=seed + b)
        for j, dist in enumerate(dists.values()):
            boots[b, j] = [e.estimate(sub, dist[rows], q) for e in ests]
    return boots


def _replicates_from_moments(logged: LoggedData, dists: dict[str, np.ndarray],
                             inverse: np.ndarray, ests: tuple, n_boot: int,
                             seed: int) -> np.ndarray:
    """The same replicates as :func:`_replicates_from_copies`, from per-pair moments."""
    n, n_actions = logged.n_rounds, logged.n_actions
    x = (np.zeros((n, 0)) if logged.obs is None
         else np.asarray(logged.obs, np.float64).reshape(n, -1))
    xt = np.hstack([np.ones((n, 1)), x - x.mean(axis=0)])      # centred: stable moments
    d = xt.shape[1]
    pairs, pair_of_row = np.unique(inverse * n_actions + logged.action, return_inverse=True)
    pair_user, pair_action = pairs // n_actions, pairs % n_actions    # (user, action) pairs
    order = np.argsort(pair_of_row, kind="stable")
    bounds = np.searchsorted(pair_of_row[order], np.arange(len(pairs) + 1))
    iu, ju = np.triu_indices(d)
    gram = np.empty((len(pairs), len(iu)))                      # upper triangles
    cross = np.empty((len(pairs), d))
    for p in range(len(pairs)):
        rows = order[bounds[p]:bounds[p + 1]]
        block = xt[rows]
        gram[p] = (block.T @ block)[iu, ju]
        cross[p] = block.T @ logged.reward[rows]
    by_action = [np.flatnonzero(pair_action == a) for a in range(n_actions)]
    gram_a = [gram[idx] for idx in by_action]
    cross_a = [cross[idx] for idx in by_action]
    user_a = [pair_user[idx] for idx in by_action]
    n_groups = int(inverse.max()) + 1
    rows_per_user = np.bincount(inverse, minlength=n_groups)
    rng = np.random.default_rng([seed, 7])
    boots = np.empty((n_boot, len(dists), len(ests)))
    for b in range(n_boot):
        pick = rng.integers(0, n_groups, n_groups)
        # each copy's fold, as cross_fit_rewards assigns them on the copied rows
        fold = make_folds(n_groups, _FOLDS, seed + b, np.arange(n_groups))
        copies = np.stack([np.bincount(pick[fold == k], minlength=n_groups)
                           for k in range(_FOLDS)])                 # (folds, users)
        total = copies.sum(axis=0)
        scored = np.zeros((n, n_actions))
        for k in range(_FOLDS):
            train = (total - copies[k]).astype(np.float64)        # copies fold k trains on
            g = np.zeros((n_actions, d, d))
            cr = np.zeros((n_actions, d))
            for a in range(n_actions):
                w = train[user_a[a]]
                g[a][iu, ju] = w @ gram_a[a]
                g[a][ju, iu] = g[a][iu, ju]
                cr[a] = w @ cross_a[a]
            coef = ridge_from_moments(g, cr, _MODEL.alpha)
            scored += copies[k][inverse, None] * (xt @ coef.T)
        weight = total[inverse].astype(np.float64)
        q = scored / np.maximum(weight, 1.0)[:, None]
        count = np.array([float(total @ rows_per_user)])
        for j, dist in enumerate(dists.values()):
            for k, e in enumerate(ests):
                terms = e._terms(logged, dist, q)
                boots[b, j, k] = e._combine((weight @ terms)[None, :], count)[0]
    return boots
