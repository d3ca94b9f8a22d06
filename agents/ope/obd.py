"""Open Bandit Dataset (OBD): logs, the Bernoulli-TS policy's action probabilities, and the
off-policy check of its click rate.

OBD (Saito et al., NeurIPS 2021 Datasets and Benchmarks, arXiv:2008.07146) logged the same
3-slot recommendation widget under two policies at once: uniform random and Bernoulli Thompson
sampling (BTS). Estimating BTS's click rate from the random logs and comparing it with the click
rate BTS actually achieved (the mean ``click`` of its own logs) checks the estimators on real
data. Each log row is one (impression, position) pair; the target policy is the per-position
marginal ``pi(item | position)``.

How the BTS probabilities are computed (the logged ``propensity_score`` of the BTS logs is used
only to report the agreement, never as the target):

* ``"posterior"`` (what BTS does): each item gets a Beta posterior ``Beta(a0 + clicks,
  b0 + shows - clicks)`` from the BTS logs' clicks and shows; BTS draws one sample per item and
  shows the top 3 in order, so ``pi(item | position p)`` is the probability that the item's draw
  ranks ``p``-th, computed by seeded Monte Carlo over ``n_sim`` draws. The production posteriors
  were trained on about a month of traffic, so posteriors from this 10,000-row sample are far
  more diffuse; expect poor agreement.
* ``"frequency"``: the share of the BTS logs' impressions at position ``p`` that showed the
  item (with ``smoothing`` pseudo-counts), the maximum-likelihood estimate of the
  (time-averaged) marginals from the logged actions alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.ope.base import BaseEstimator
from agents.ope.data import LoggedData
from agents.ope.reward_model import TabularRewardModel, cross_fit_rewards
from predictors import check_choice, check_int, check_number
from predictors.errors import DataValidationError, Problem

__all__ = [
    "OBD_CAMPAIGNS",
    "BTSConfig",
    "bts_action_dist",
    "evaluate_obd",
    "load_obd_logs",
    "obd_logged_data",
    "obd_target_dist",
    "propensity_agreement",
]

#: Number of items per campaign.
OBD_CAMPAIGNS: dict[str, int] = {"all": 80, "men": 34, "women": 46}
LEN_LIST = 3
_COLUMNS = ["item_id", "position", "click", "propensity_score"]


def load_obd_logs(root: str | Path, policy: str, campaign: str) -> pd.DataFrame:
    """Read ``root/<policy>/<campaign>/<campaign>.csv`` (item_id, position, click, propensity).

    Raises:
        FileNotFoundError: If the file is missing.
        DataValidationError: Naming file, CSV line and column of the first bad value.
    """
    if policy not in ("random", "bts"):
        raise ValueError(f"`policy` must be 'random' or 'bts'; got {policy!r}")
    if campaign not in OBD_CAMPAIGNS:
        raise ValueError(f"`campaign` must be one of {list(OBD_CAMPAIGNS)}; got {campaign!r}")
    path = Path(root) / policy / campaign / f"{campaign}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"OBD log not found: {path}")
    header = pd.read_csv(path, index_col=0, nrows=0).columns
    missing = [c for c in _COLUMNS if c not in header]
    if missing:
        raise DataValidationError(Problem(path.name, 1, missing[0], f"columns {_COLUMNS}",
                                          f"header {list(header)[:6]}..."))
    df = pd.read_csv(path, usecols=_COLUMNS)
    n_items = OBD_CAMPAIGNS[campaign]
    checks = [
        ("item_id", (df.item_id < 0) | (df.item_id >= n_items), f"an integer in [0, {n_items})"),
        ("position", ~df.position.isin(range(1, LEN_LIST + 1)), "1, 2 or 3"),
        ("click", ~df.click.isin((0, 1)), "0 or 1"),
        ("propensity_score", ~((df.propensity_score > 0) & (df.propensity_score <= 1)),
         "a probability in (0, 1]"),
    ]
    problems = []
    for column, bad, expected in checks:
        bad = np.asarray(bad)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            problems.append(Problem(f"{policy}/{campaign}/{path.name}", i + 2, column, expected,
                                    repr(df[column].iloc[i]), count=int(bad.sum())))
    if problems:
        raise DataValidationError(problems)
    return df


@dataclass(frozen=True)
class BTSConfig:
    """How to compute the BTS policy's action probabilities (see the module docstring).

    Attributes:
        method: ``"posterior"`` (Beta posteriors + Monte-Carlo ranking) or ``"frequency"``.
        n_sim: Monte-Carlo draws of the posteriors.
        prior: Beta prior ``(a0, b0)`` of every item's click rate.
        smoothing: Pseudo-count per (item, position) for ``"frequency"``.
        seed: Seed of the Monte-Carlo draws.
    """

    method: str = "posterior"
    n_sim: int = 100_000
    prior: tuple[float, float] = (1.0, 1.0)
    smoothing: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice(self, "method", ("posterior", "frequency"))
        check_int(self, "n_sim", ge=1)
        if min(self.prior) <= 0 or len(self.prior) != 2:
            raise ValueError(f"`prior` must be two positive numbers; got {self.prior!r}")
        check_number(self, "smoothing", ge=0)


def bts_action_dist(bts_logs: pd.DataFrame, n_items: int, config: BTSConfig) -> np.ndarray:
    """BTS's probability of showing each item at each position, ``(n_items, 3)``.

    Each column sums to 1 (every position shows exactly one item).

    Example:
        >>> logs = pd.DataFrame({"item_id": [0, 1, 2, 0], "position": [1, 2, 3, 1],
        ...                      "click": [1, 0, 0, 1]})
        >>> pi = bts_action_dist(logs, 3, BTSConfig(n_sim=2000))
        >>> np.allclose(pi.sum(axis=0), 1.0)
        True
    """
    items = bts_logs.item_id.to_numpy()
    pos = bts_logs.position.to_numpy() - 1
    if config.method == "frequency":
        counts = np.zeros((n_items, LEN_LIST))
        np.add.at(counts, (items, pos), 1.0)
        counts += config.smoothing
        return counts / counts.sum(axis=0, keepdims=True)
    clicks = np.bincount(items, weights=bts_logs.click.to_numpy(float), minlength=n_items)
    shows = np.bincount(items, minlength=n_items).astype(float)
    a = config.prior[0] + clicks
    b = config.prior[1] + shows - clicks
    rng = np.random.default_rng(config.seed)
    counts = np.zeros((n_items, LEN_LIST))
    chunk = max(1, 2_000_000 // n_items)
    for start in range(0, config.n_sim, chunk):
        m = min(chunk, config.n_sim - start)
        draws = rng.beta(a, b, size=(m, n_items))
        top = np.argsort(-draws, axis=1)[:, :LEN_LIST]
        for p in range(LEN_LIST):
            counts[:, p] += np.bincount(top[:, p], minlength=n_items)
    return counts / config.n_sim


def propensity_agreement(pi: np.ndarray, bts_logs: pd.DataFrame) -> dict[str, float]:
    """Agreement of computed ``pi(item | position)`` with the BTS logs' propensity column.

    Returns:
        ``log_corr`` (Pearson correlation of the logs, probabilities floored at 1e-6),
        ``corr`` (Pearson on the raw scale), ``mae`` (mean absolute difference) and
        ``mean_ratio`` (mean computed / mean logged), all over the BTS log rows.
    """
    p = pi[bts_logs.item_id.to_numpy(), bts_logs.position.to_numpy() - 1]
    q = bts_logs.propensity_score.to_numpy(float)
    lp, lq = np.log(np.maximum(p, 1e-6)), np.log(np.maximum(q, 1e-6))
    return {
        "log_corr": float(np.corrcoef(lp, lq)[0, 1]),
        "corr": float(np.corrcoef(p, q)[0, 1]),
        "mae": float(np.abs(p - q).mean()),
        "mean_ratio": float(p.mean() / q.mean()),
    }


def obd_logged_data(logs: pd.DataFrame, n_items: int) -> LoggedData:
    """LoggedData of OBD rows: action = item, reward = click, obs = position index (0-2)."""
    return LoggedData(
        action=logs.item_id.to_numpy(np.int64),
        reward=logs.click.to_numpy(np.float64),
        pscore=logs.propensity_score.to_numpy(np.float64),
        n_actions=n_items,
        obs=(logs.position.to_numpy(np.int64) - 1)[:, None],
    )


def obd_target_dist(pi: np.ndarray, logs: pd.DataFrame) -> np.ndarray:
    """Per-row target probabilities ``(n, n_items)``: ``pi(. | position of the row)``."""
    return np.ascontiguousarray(pi[:, logs.position.to_numpy() - 1].T)


def evaluate_obd(
    root: str | Path,
    campaign: str,
    estimators: list[BaseEstimator],
    bts: BTSConfig,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    prior_strength: float = 100.0,
) -> dict[str, Any]:
    """Estimate BTS's click rate from the random logs and compare with its on-policy rate.

    Args:
        root: The OBD folder (holding ``random/`` and ``bts/``).
        campaign: ``all``, ``men`` or ``women``.
        estimators: One-step estimators to run.
        bts: How to compute the BTS probabilities.
        n_boot, seed, alpha: Bootstrap settings.
        prior_strength: Shrinkage of the per-(item, position) reward means used by DM/DR
            (:class:`TabularRewardModel`), in pseudo-rows.

    Returns:
        ``{"campaign", "method", "on_policy": Interval, "agreement": {...}, "estimates":
        [{"estimator", "mean", "low", "high", "rel_error"}]}``; the on-policy interval is the
        BTS logs' click rate with a normal-approximation interval.
    """
    n_items = OBD_CAMPAIGNS[campaign]
    random_logs = load_obd_logs(root, "random", campaign)
    bts_logs = load_obd_logs(root, "bts", campaign)
    pi = bts_action_dist(bts_logs, n_items, bts)
    data = obd_logged_data(random_logs, n_items)
    target = obd_target_dist(pi, random_logs)
    q = cross_fit_rewards(data, TabularRewardModel(prior_strength), n_folds=2, seed=seed)
    on = float(bts_logs.click.mean())
    z = float(_normal_quantile(1 - alpha / 2))
    half = z * float(bts_logs.click.std(ddof=1)) / np.sqrt(len(bts_logs))
    rows = []
    for est in estimators:
        iv = est.interval(data, target, q if est.requires_reward_model else None,
                          alpha=alpha, n_boot=n_boot, seed=seed)
        rows.append({"estimator": est.name, "mean": iv.mean, "low": iv.low, "high": iv.high,
                     "rel_error": abs(iv.mean - on) / on})
    return {
        "campaign": campaign,
        "method": bts.method,
        "on_policy": {"mean": on, "low": on - half, "high": on + half},
        "random_ctr": float(random_logs.click.mean()),
        "agreement": propensity_agreement(pi, bts_logs),
        "estimates": rows,
    }


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))
