"""The accuracy benchmark's summary: each estimator's error, rank agreement and coverage.

Per estimator, over (dataset, policy) pairs: median relative error ``|estimate - truth| /
|truth|``, mean Spearman rank correlation of estimates with the truth over the policies of a
dataset, coverage (share of pairs whose interval holds the truth) and mean interval width;
``meets_goal`` compares them with :data:`GOAL`. Per policy: the mean truth and each estimator's
mean estimate, median relative error and coverage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["GOAL", "summarize"]

#: The goal of the best sequential estimator.
GOAL = {"median_rel_error": 0.05, "spearman": 0.9, "coverage": 0.9}


def summarize(datasets: list[dict[str, Any]], estimators: Sequence[str],
              policies: Sequence[str]) -> dict[str, Any]:
    """Per-estimator and per-policy figures over all datasets (see the module docstring)."""
    summary = []
    for name in estimators:
        cells = [r["estimates"][name] | {"truth": r["true_value"]}
                 for d in datasets for r in d["policies"]]
        rel = np.array([c["rel_error"] for c in cells])
        rho = np.array([d["spearman"][name] for d in datasets])
        row = {"estimator": name, "median_rel_error": float(np.nanmedian(rel)),
               "mean_rel_error": float(np.nanmean(rel)),
               "spearman_mean": float(np.nanmean(rho)) if np.isfinite(rho).any() else None,
               "spearman_min": float(np.nanmin(rho)) if np.isfinite(rho).any() else None,
               "coverage": float(np.mean([c["covers"] for c in cells])),
               "mean_ci_width": float(np.mean([c["high"] - c["low"] for c in cells])),
               "seconds": float(sum(c["seconds"] for c in cells))}
        row["meets_goal"] = bool(row["median_rel_error"] <= GOAL["median_rel_error"]
                                 and (row["spearman_mean"] or 0.0) >= GOAL["spearman"]
                                 and row["coverage"] >= GOAL["coverage"])
        summary.append(row)
    per_policy = []
    for j, text in enumerate(policies):
        cells = [d["policies"][j] for d in datasets]
        entry: dict[str, Any] = {
            "policy": text, "true_value_mean": float(np.mean([c["true_value"] for c in cells])),
            "true_se_max": float(max(c["true_se"] for c in cells)), "estimators": {}}
        for name in estimators:
            e = [c["estimates"][name] for c in cells]
            entry["estimators"][name] = {
                "mean_estimate": float(np.mean([x["mean"] for x in e])),
                "median_rel_error": float(np.nanmedian([x["rel_error"] for x in e])),
                "coverage": float(np.mean([x["covers"] for x in e]))}
        per_policy.append(entry)
    rel_se = [r["true_se"] / abs(r["true_value"]) for d in datasets for r in d["policies"]
              if r["true_value"]]
    return {"summary": summary, "per_policy": per_policy,
            "truth_rel_se_max": float(max(rel_se)) if rel_se else float("nan")}
