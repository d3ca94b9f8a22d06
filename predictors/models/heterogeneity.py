"""Measured effects of a randomized test, overall and per group of customers, and whether a
model's predicted effects vary across the groups the way the measured ones do.

* :func:`difference_in_means`: treated minus control mean with Neyman's interval.
* :func:`attribute_groups`: groups of customers per pre-treatment attribute (categories, or
  quartiles of a numeric attribute with many values).
* :func:`group_agreement`: per attribute, the measured effect of every group against each
  model's mean predicted effect there; for every pair of groups whose measured difference is
  significant (its interval excludes 0), whether the model orders the pair the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm, spearmanr

#: A numeric attribute with more distinct values than this is cut into quartiles.
MAX_LEVELS = 8
#: Predicted group effects closer than this are a tie (a model constant across customers
#: gives group means that differ only by rounding); a tie agrees with no measured sign.
TIE = 1e-9


@dataclass(frozen=True)
class ArmEffect:
    """A measured average effect: difference of arm means and its confidence interval."""

    mean: float
    low: float
    high: float
    n_treated: int
    n_control: int

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in ``[low, high]``."""
        return bool(self.low <= value <= self.high)

    @property
    def half_width(self) -> float:
        """Half the interval's width (``z * se``)."""
        return (self.high - self.low) / 2.0


def difference_in_means(y: np.ndarray, treated: np.ndarray, alpha: float = 0.05) -> ArmEffect:
    """Treated minus control mean of ``y`` with a normal-approximation interval.

    ``se = sqrt(s_T^2 / n_T + s_C^2 / n_C)`` (sample variances), interval
    ``mean -/+ z_{1 - alpha/2} * se``: Neyman's conservative interval for a randomized test.

    Example:
        >>> e = difference_in_means(np.array([1., 0, 1, 1, 0, 0]), np.array([1, 1, 1, 0, 0, 0]))
        >>> round(e.mean, 4), e.n_treated
        (0.3333, 3)
    """
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(treated).astype(bool)
    if y.shape != t.shape or y.ndim != 1:
        raise ValueError(f"`y` and `treated` must be 1-D of one length; got {y.shape}, {t.shape}")
    n_t, n_c = int(t.sum()), int((~t).sum())
    if n_t < 2 or n_c < 2:
        raise ValueError(f"each arm needs >= 2 units; got {n_t} treated, {n_c} control")
    diff = float(y[t].mean() - y[~t].mean())
    se = float(np.sqrt(y[t].var(ddof=1) / n_t + y[~t].var(ddof=1) / n_c))
    z = float(norm.ppf(1 - alpha / 2))
    return ArmEffect(diff, diff - z * se, diff + z * se, n_t, n_c)


def attribute_groups(users: pd.DataFrame, max_levels: int = MAX_LEVELS) -> dict[str, pd.Series]:
    """Attribute -> group label of every row of ``users`` (``user_id`` is skipped).

    Categorical attributes and numeric ones with at most ``max_levels`` values group by value;
    other numeric attributes by quartile (labels ``q1 [lo, hi]`` .. ``q4``). Missing values form
    no group (label ``NaN``).

    Example:
        >>> u = pd.DataFrame({"user_id": [1, 2, 3, 4], "newbie": [0, 1, 1, 0]})
        >>> attribute_groups(u)["newbie"].tolist()
        ['0', '1', '1', '0']
    """
    out: dict[str, pd.Series] = {}
    for col in users.columns:
        if col == "user_id":
            continue
        s = users[col]
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if numeric and s.nunique(dropna=True) > max_levels:
            v = s.astype("float64")
            bins = pd.qcut(v, 4, duplicates="drop")
            labels = {iv: f"q{i + 1} [{iv.left:g}, {iv.right:g}]"
                      for i, iv in enumerate(bins.cat.categories)}
            out[col] = bins.map(labels).astype(object).where(v.notna())
        else:
            out[col] = s.astype(object).where(s.notna()).map(
                lambda x: x if isinstance(x, float) and np.isnan(x) else str(x))
    return out


def group_agreement(groups: pd.Series, y: np.ndarray, treated: np.ndarray,
                    in_test: np.ndarray, predicted: dict[str, np.ndarray],
                    alpha: float = 0.05, min_arm: int = 30) -> dict[str, Any]:
    """Measured vs predicted effect per group of one attribute, and pairwise sign agreement.

    Args:
        groups: ``(n,)`` group label per customer (``NaN``: in no group).
        y: ``(n,)`` outcome.
        treated: ``(n,)`` 1 treated arm, 0 control arm, -1 neither (another arm: used only
            for the predicted means).
        in_test: ``(n,)`` bool, kept (the held-out customers).
        predicted: Model name -> ``(n,)`` predicted effect of each customer.
        alpha: 1 - confidence level of the measured intervals and of the pair tests.
        min_arm: Groups with fewer treated or control customers are left out.

    Returns:
        ``groups``: per group ``label``, ``n`` (customers), ``measured`` (an
        :class:`ArmEffect` as a dict) and ``predicted`` (model -> mean predicted effect);
        ``agreement``: model -> ``n_pairs``, ``n_significant`` (pairs whose measured
        difference has an interval excluding 0), ``n_agree`` (of those, the model's difference
        has the same sign; a tie within :data:`TIE` agrees with none), ``spearman`` (rank
        correlation of the group effects, ``nan`` under three groups or for a constant model),
        ``n_signed_groups`` (groups whose measured interval excludes 0) and ``n_sign_agree``
        (of those, the model's mean predicted effect has the measured sign).
    """
    g = pd.Series(np.asarray(groups, dtype=object))
    tr = np.asarray(treated)
    keep = np.asarray(in_test, dtype=bool) & g.notna().to_numpy()
    rows = []
    for label in sorted(g[keep].unique(), key=str):
        sel = keep & (g == label).to_numpy()
        arm = sel & (tr >= 0)
        if (tr[arm] == 1).sum() < min_arm or (tr[arm] == 0).sum() < min_arm:
            continue
        eff = difference_in_means(np.asarray(y, dtype=np.float64)[arm], tr[arm] == 1, alpha)
        rows.append({"label": str(label), "n": int(sel.sum()), "measured": asdict(eff),
                     "predicted": {k: float(np.mean(v[sel])) for k, v in predicted.items()}})
    z = float(norm.ppf(1 - alpha / 2))
    agreement: dict[str, dict[str, float]] = {}
    for name in predicted:
        n_sig = n_agree = 0
        for a, b in combinations(rows, 2):
            d = a["measured"]["mean"] - b["measured"]["mean"]
            se = np.hypot(*(ArmEffect(**r["measured"]).half_width / z for r in (a, b)))
            if abs(d) > z * se:
                n_sig += 1
                p = a["predicted"][name] - b["predicted"][name]
                n_agree += bool(abs(p) > TIE and np.sign(p) == np.sign(d))
        pred = [r["predicted"][name] for r in rows]
        if len(rows) >= 3 and np.ptp(pred) > TIE:
            rho = float(spearmanr([r["measured"]["mean"] for r in rows], pred).statistic)
        else:
            rho = float("nan")
        signed = [r for r in rows if r["measured"]["low"] > 0 or r["measured"]["high"] < 0]
        n_sign = sum(bool(abs(r["predicted"][name]) > TIE and np.sign(r["predicted"][name])
                          == np.sign(r["measured"]["mean"])) for r in signed)
        agreement[name] = {"n_pairs": len(rows) * (len(rows) - 1) // 2,
                           "n_significant": n_sig, "n_agree": n_agree, "spearman": rho,
                           "n_signed_groups": len(signed), "n_sign_agree": n_sign}
    return {"groups": rows, "agreement": agreement}
