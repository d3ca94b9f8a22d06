"""The selection gate scored against the TRUE gains of the accuracy benchmark.

On each generated dataset of :func:`agents.ope.accuracy.run_ope_accuracy`, every policy other
than the baseline is put to the gate alone (one candidate, so no multiplicity correction):
recommended iff the paired bootstrap lower bound of its gain over the baseline is above 0 at
the stated one-sided confidence. Against the truth simulated in the world:

* **type I**: share of (dataset, candidate) pairs whose TRUE gain is <= 0 that are recommended;
* **power**: share of pairs whose TRUE gain is >= 5% of the baseline's true value that are
  recommended;
* **datasets with any recommendation**: per candidate alone as above, and as ``nudgegym
  select`` decides with all candidates at once (each bound at ``(1 - confidence) / k``,
  Bonferroni over the ``k`` candidates): the null-world figure.

**Null world**: the preset ``inert`` (``predictors/synthetic/worlds/inert.yaml``, ``--world
inert``): one homogeneous segment without personal trait or response noise, every contact
response, coupon sensitivity, fatigue and contact-churn effect zero, and sends free; only a
coupon's discount, given away on purchases, separates policies (coupons are worse). No policy's
true gain over a coupon-free one is positive beyond Monte-Carlo noise, so a gate should
recommend nothing. (Not the preset ``null``, where sends still lift visits.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.ope.marginal import JointReplicates
from agents.ope.selection import gain_bounds

__all__ = ["gate_rows", "summarize_gate"]

#: Relative true gain above which the gate should recommend a candidate (power).
POWER_GAIN = 0.05


def gate_rows(rep: JointReplicates, rows: Sequence[dict[str, Any]], baseline: str,
              confidence: float) -> list[dict[str, Any]]:
    """Per candidate and estimator: estimated gain, lower bound, decision, and the TRUE gain."""
    truth = {r["policy"]: r["true_value"] for r in rows}
    base = truth[baseline]
    k = len(truth) - 1
    out = []
    for name in truth:
        if name == baseline:
            continue
        row: dict[str, Any] = {"policy": name, "true_gain": truth[name] - base,
                               "true_rel_gain": (truth[name] - base) / abs(base)
                               if base else float("nan"), "estimators": {}}
        for est in rep.estimators:
            gain, low, _ = gain_bounds(rep, est, name, baseline, 1 - confidence)
            low_k = gain_bounds(rep, est, name, baseline, (1 - confidence) / max(k, 1))[1]
            row["estimators"][est] = {"gain": gain, "gain_low": low, "recommend": low > 0,
                                      "gain_low_bonferroni": low_k,
                                      "recommend_bonferroni": low_k > 0}
        out.append(row)
    return out


def summarize_gate(datasets: Sequence[dict[str, Any]],
                   estimators: Sequence[str]) -> list[dict[str, Any]]:
    """Type I rate, power and the share of datasets with any recommendation (candidates alone,
    and Bonferroni over all of them as ``select`` decides), per estimator."""
    cells = [g for d in datasets for g in d.get("gate", [])]
    if not cells:
        return []
    summary = []
    for est in estimators:
        null = [c["estimators"][est]["recommend"] for c in cells if c["true_gain"] <= 0]
        alt = [c["estimators"][est]["recommend"] for c in cells
               if c["true_rel_gain"] >= POWER_GAIN]
        any_rec = [any(c["estimators"][est]["recommend"] for c in d["gate"]) for d in datasets
                   if d.get("gate")]
        any_k = [any(c["estimators"][est]["recommend_bonferroni"] for c in d["gate"])
                 for d in datasets if d.get("gate")]
        summary.append({"estimator": est, "null_pairs": len(null),
                        "type_i": float(np.mean(null)) if null else float("nan"),
                        "power_pairs": len(alt),
                        "power": float(np.mean(alt)) if alt else float("nan"),
                        "datasets": len(any_rec),
                        "any_recommendation": float(np.mean(any_rec)) if any_rec
                        else float("nan"),
                        "any_recommendation_bonferroni": float(np.mean(any_k)) if any_k
                        else float("nan")})
    return summary
