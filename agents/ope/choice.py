"""Data-driven choice among OPE estimators of one policy, with the reason written out.

No estimator wins everywhere: importance sampling is unbiased but its interval explodes with
the horizon; model-based estimates are tight but biased by their model. Two rules pick one
from the estimates and intervals alone (no truth):

* ``slope`` (default): a Lepski-type rule as in SLOPE (Su, Srinath & Krishnamurthy,
  "Adaptive estimator selection for off-policy evaluation", ICML 2020). The estimators are
  ordered by interval width, widest first (wide = presumed less biased); walking toward the
  narrow end, an estimator is accepted while its interval intersects the intervals of every
  wider estimator; the last accepted one is chosen. The walk stops at the first estimator that
  misses one: its tightness came with a bias the wider ones can see.
* ``mse``: the smallest estimated MSE, ``sd_k^2 + max(0, (m_k - m_ref)^2 - sd_k^2 -
  sd_ref^2)``, where ``ref`` is the widest (least biased) estimator and ``sd`` is the interval
  width / (2 * 1.96); the squared difference minus its own variance estimates the squared
  bias.

Estimators whose interval is not finite or has zero width (every resample gave the same value,
e.g. importance weights that are all 0) are left out. The chosen estimator's interval is
its own: it does not account for the choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from agents.ope.base import Interval

__all__ = ["CHOICE_METHODS", "EstimatorChoice", "choose_estimator"]

CHOICE_METHODS = ("slope", "mse")
_Z = 1.959963984540054


@dataclass(frozen=True)
class EstimatorChoice:
    """The chosen estimator, why, and why the others were not.

    Attributes:
        estimator: Name of the chosen estimator.
        interval: Its interval.
        method: ``slope`` or ``mse``.
        reason: One sentence.
        rejected: Name -> why it was not chosen.
    """

    estimator: str
    interval: Interval
    method: str
    reason: str
    rejected: dict[str, str] = field(default_factory=dict)


def _fmt(iv: Interval) -> str:
    return f"[{iv.low:.4g}, {iv.high:.4g}]"


def choose_estimator(intervals: Mapping[str, Interval], method: str = "slope") -> EstimatorChoice:
    """Pick one estimator of one policy from their intervals (see the module docstring).

    Args:
        intervals: Estimator name -> its estimate and interval (same policy, same data).
        method: ``slope`` or ``mse``.

    Raises:
        ValueError: Unknown method, or no estimator with a finite interval.

    Example:
        >>> ivs = {"wide": Interval(10.0, 0.0, 20.0), "tight": Interval(12.0, 11.0, 13.0),
        ...        "off": Interval(30.0, 29.5, 30.5)}
        >>> choose_estimator(ivs).estimator
        'tight'
    """
    if method not in CHOICE_METHODS:
        raise ValueError(f"`method` must be one of {CHOICE_METHODS}; got {method!r}")
    finite = {k: v for k, v in intervals.items()
              if np.isfinite([v.mean, v.low, v.high]).all() and v.high > v.low}
    rejected = {k: "interval not finite or of zero width (degenerate bootstrap)"
                for k in intervals if k not in finite}
    if not finite:
        raise ValueError("no estimator has a finite interval to choose from")
    order = sorted(finite, key=lambda k: (-(finite[k].high - finite[k].low), k))
    ref = order[0]
    if method == "slope":
        chosen = ref
        for i, name in enumerate(order[1:], start=1):
            iv = finite[name]
            miss = [w for w in order[:i] if iv.high < finite[w].low or iv.low > finite[w].high]
            if miss:
                rejected[name] = (f"its interval {_fmt(iv)} misses {miss[0]}'s "
                                  f"{_fmt(finite[miss[0]])}")
                for later in order[i + 1:]:
                    rejected[later] = f"narrower than {name}, where the walk stopped"
                break
            rejected[chosen] = f"{name} is narrower and agrees with every wider interval"
            chosen = name
        n_wider = order.index(chosen)
        reason = (f"narrowest interval {_fmt(finite[chosen])} that overlaps all "
                  f"{n_wider} wider one(s)" if n_wider else
                  f"widest interval {_fmt(finite[chosen])}; no narrower one overlaps it and "
                  "every wider one")
        return EstimatorChoice(chosen, finite[chosen], method, reason, rejected)
    sd = {k: (v.high - v.low) / (2 * _Z) for k, v in finite.items()}
    mse = {k: sd[k] ** 2 + max(0.0, (finite[k].mean - finite[ref].mean) ** 2 - sd[k] ** 2
                               - sd[ref] ** 2) for k in finite}
    mse[ref] = sd[ref] ** 2
    chosen = min(order, key=lambda k: mse[k])
    for k in order:
        if k != chosen:
            rejected[k] = f"estimated MSE {mse[k]:.4g} > {mse[chosen]:.4g}"
    reason = (f"smallest estimated MSE {mse[chosen]:.4g} (variance {sd[chosen] ** 2:.4g}, bias "
              f"measured against {ref}, the widest interval)")
    return EstimatorChoice(chosen, finite[chosen], method, reason, rejected)
