"""Diagnostic plots of a behavior predictor (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from predictors.io import atomic_path
from predictors.models.metrics import calibration_curve


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss_curves(history: list[dict[str, float]], path: str | Path) -> Path:
    """Training and validation loss per epoch (one PNG)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_loss"] for h in history], marker="o", label="train")
    if history and "val_loss" in history[0]:
        ax.plot(ep, [h["val_loss"] for h in history], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (sum of heads)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def plot_calibration(outcomes: dict[str, tuple[np.ndarray, ...]], path: str | Path,
                     n_bins: int = 10) -> Path:
    """Reliability diagram of each binary head (observed vs predicted frequency)."""
    plt = _pyplot()
    heads = [h for h in outcomes if h != "revenue"]
    fig, axes = plt.subplots(1, len(heads), figsize=(3.2 * len(heads), 3.2), squeeze=False)
    for ax, head in zip(axes[0], heads, strict=True):
        y, p = outcomes[head]
        if len(y):
            c = calibration_curve(y, p, n_bins)
            ax.plot(c["mean_pred"], c["mean_obs"], marker="o")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set_title(head)
        ax.set_xlabel("predicted")
        ax.set_ylabel("observed")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
