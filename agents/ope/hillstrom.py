"""Hillstrom e-mail experiment: the value of targeting policies, off-policy and directly.

The MineThatData e-mail challenge (Hillstrom, 2008) randomised 64,000 customers, one third
each, to a men's e-mail, a women's e-mail or no e-mail, and recorded a visit, a conversion and
the spend over the next two weeks. Because the logging policy is uniform (propensity 1/3), the
value of any targeting rule can be estimated off-policy (IPS, SNIPS, DR) and also measured
directly on the customers whose random arm happens to match the rule (a mean with its own
normal-approximation interval). For a deterministic rule and a constant propensity, SNIPS
equals that matched mean exactly; IPS and DR differ from it by their own noise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from agents.ope.base import BaseEstimator
from agents.ope.data import LoggedData
from agents.ope.reward_model import RidgeRewardModel, cross_fit_rewards
from agents.policy import TablePolicy
from predictors.errors import DataValidationError, Problem

__all__ = [
    "HILLSTROM_ARMS",
    "HILLSTROM_OUTCOMES",
    "HILLSTROM_POLICIES",
    "evaluate_hillstrom",
    "hillstrom_features",
    "hillstrom_logged_data",
    "load_hillstrom",
]

#: The arms, in action-index order.
HILLSTROM_ARMS: tuple[str, ...] = ("No E-Mail", "Mens E-Mail", "Womens E-Mail")
HILLSTROM_OUTCOMES: tuple[str, ...] = ("visit", "conversion", "spend")
_NONE, _MENS, _WOMENS = 0, 1, 2
_COLUMNS = ["recency", "history", "mens", "womens", "zip_code", "newbie", "channel", "segment",
            *HILLSTROM_OUTCOMES]


def load_hillstrom(path: str | Path) -> pd.DataFrame:
    """Read ``hillstrom.csv`` and check the columns and values used here.

    Raises:
        FileNotFoundError: If the file is missing.
        DataValidationError: Naming the file, CSV line and column of the first bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Hillstrom CSV not found: {path}")
    df = pd.read_csv(path)
    missing = [c for c in _COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError(
            Problem(path.name, 1, missing[0], f"columns {_COLUMNS}", f"{list(df.columns)}")
        )
    checks = [
        ("segment", ~df.segment.isin(HILLSTROM_ARMS), f"one of {list(HILLSTROM_ARMS)}"),
        ("recency", ~pd.to_numeric(df.recency, errors="coerce").between(1, 12), "1-12"),
        ("mens", ~df.mens.isin((0, 1)), "0 or 1"),
        ("womens", ~df.womens.isin((0, 1)), "0 or 1"),
        ("visit", ~df.visit.isin((0, 1)), "0 or 1"),
        ("conversion", ~df.conversion.isin((0, 1)), "0 or 1"),
        ("spend", ~(pd.to_numeric(df.spend, errors="coerce") >= 0), "a number >= 0"),
        ("history", ~(pd.to_numeric(df.history, errors="coerce") > 0), "a number > 0"),
    ]
    problems = []
    for column, bad, expected in checks:
        bad = bad.to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            problems.append(Problem(path.name, i + 2, column, expected, repr(df[column].iloc[i]),
                                    count=int(bad.sum())))
    if problems:
        raise DataValidationError(problems)
    return df


def hillstrom_features(df: pd.DataFrame) -> np.ndarray:
    """Pre-treatment features ``(n, 10)``: recency, log history, mens, womens, newbie,
    one-hot zip code (Urban, Surburban) and channel (Web, Multichannel), and recency <= 6."""
    return np.column_stack([
        df.recency.to_numpy(float),
        np.log(df.history.to_numpy(float)),
        df.mens.to_numpy(float),
        df.womens.to_numpy(float),
        df.newbie.to_numpy(float),
        (df.zip_code == "Urban").to_numpy(float),
        (df.zip_code == "Surburban").to_numpy(float),
        (df.channel == "Web").to_numpy(float),
        (df.channel == "Multichannel").to_numpy(float),
        (df.recency.to_numpy() <= 6).astype(float),
    ])


def hillstrom_logged_data(df: pd.DataFrame, outcome: str) -> LoggedData:
    """LoggedData of the experiment: the randomised arm, ``outcome`` as reward, pscore 1/3."""
    if outcome not in HILLSTROM_OUTCOMES:
        raise ValueError(f"`outcome` must be one of {HILLSTROM_OUTCOMES}; got {outcome!r}")
    action = pd.Categorical(df.segment, categories=list(HILLSTROM_ARMS)).codes.astype(np.int64)
    return LoggedData(
        action=action, reward=df[outcome].to_numpy(float),
        pscore=np.full(len(df), 1.0 / len(HILLSTROM_ARMS)), n_actions=len(HILLSTROM_ARMS),
        obs=hillstrom_features(df), action_names=HILLSTROM_ARMS,
    )


#: Deterministic targeting rules: customer table -> arm index per customer.
HILLSTROM_POLICIES: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    # men's e-mail to past men's buyers, women's e-mail to women's-only buyers
    "match-history": lambda d: np.where(d.mens.to_numpy() == 1, _MENS, _WOMENS),
    # men's e-mail only to customers who bought in the last 6 months
    "mens-if-recent": lambda d: np.where(d.recency.to_numpy() <= 6, _MENS, _NONE),
    # women's e-mail only to past women's buyers
    "womens-to-women-buyers": lambda d: np.where(d.womens.to_numpy() == 1, _WOMENS, _NONE),
    # men's e-mail to customers who spent over $200 in the past year
    "mens-if-history-200": lambda d: np.where(d.history.to_numpy() > 200, _MENS, _NONE),
    "mens-to-all": lambda d: np.full(len(d), _MENS),
    "no-email": lambda d: np.full(len(d), _NONE),
}


def evaluate_hillstrom(
    df: pd.DataFrame,
    estimators: list[BaseEstimator],
    policies: list[str] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """Value of each policy on each outcome by each estimator, beside the matched-arm value.

    Args:
        df: The experiment (:func:`load_hillstrom`).
        estimators: One-step estimators; DM/DR types use a cross-fitted ridge reward model on
            :func:`hillstrom_features`.
        policies: Names from :data:`HILLSTROM_POLICIES` (default: all).
        n_boot, seed, alpha: Bootstrap settings.

    Returns:
        One dict per (policy, outcome, estimator) with ``mean``, ``low``, ``high``; the
        estimator ``"matched"`` is the mean outcome of customers whose random arm matches the
        policy, with a normal interval; ``emailed`` is the policy's share of e-mailed customers.
    """
    names = list(HILLSTROM_POLICIES) if policies is None else list(policies)
    unknown = [p for p in names if p not in HILLSTROM_POLICIES]
    if unknown:
        raise ValueError(f"unknown Hillstrom policy {unknown[0]!r}; known: "
                         f"{list(HILLSTROM_POLICIES)}")
    z = float(norm.ppf(1 - alpha / 2))
    rows: list[dict[str, Any]] = []
    for outcome in HILLSTROM_OUTCOMES:
        data = hillstrom_logged_data(df, outcome)
        q = cross_fit_rewards(data, RidgeRewardModel(), n_folds=2, seed=seed)
        for name in names:
            arm = HILLSTROM_POLICIES[name](df)
            target = TablePolicy(np.eye(len(HILLSTROM_ARMS))[arm])
            emailed = float((arm != _NONE).mean())
            base = {"policy": name, "outcome": outcome, "emailed": emailed}
            matched = data.reward[data.action == arm]
            half = z * float(matched.std(ddof=1)) / np.sqrt(len(matched))
            m = float(matched.mean())
            rows.append({**base, "estimator": "matched", "mean": m, "low": m - half,
                         "high": m + half, "n": int(len(matched))})
            for est in estimators:
                iv = est.interval(data, target, q if est.requires_reward_model else None,
                                  alpha=alpha, n_boot=n_boot, seed=seed)
                rows.append({**base, "estimator": est.name, "mean": iv.mean, "low": iv.low,
                             "high": iv.high, "n": data.n_rounds})
    return rows
