"""LoggedData from a dataset's user x period panel: one round per logged decision.

Rows are the panel's user-periods whose intervention was logged with a propensity; ``obs`` is
the observation vector the simulator and the policies see
(:func:`predictors.features.observations_from_panel`, computed from earlier periods only),
``user_id`` / ``time_step`` (the period) make the rows per-user trajectories for the sequential
estimators.

Rewards (``reward=``):

* ``"net"``: revenue of the period minus the action's cost: its per-send ``cost`` plus, for a
  discount action, ``discount_rate`` times the period's revenue when the user purchased (the
  environment's reward);
* ``"revenue"``: revenue of the period;
* ``"purchase"``: 1 if the user purchased in the period, else 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agents.ope.data import LoggedData
from predictors import (
    DatasetSpec,
    DataValidationError,
    FeatureConfig,
    Problem,
    observations_from_panel,
)

__all__ = ["REWARDS", "logged_data_from_panel"]

REWARDS = ("net", "revenue", "purchase")


def logged_data_from_panel(
    panel: pd.DataFrame,
    spec: DatasetSpec,
    *,
    reward: str = "net",
    feature_config: FeatureConfig | None = None,
) -> LoggedData:
    """The panel's logged decisions as LoggedData (see the module docstring).

    Args:
        panel: A panel of :func:`predictors.panel.build_panel` (sorted by user, period).
        spec: The dataset spec (action catalog with costs).
        reward: ``net``, ``revenue`` or ``purchase``.
        feature_config: Observation options.

    Raises:
        ValueError: Unknown ``reward``.
        DataValidationError: No logged decision carries a propensity, or a propensity is
            outside (0, 1] (naming the panel row, user and period).
    """
    if reward not in REWARDS:
        raise ValueError(f"`reward` must be one of {REWARDS}; got {reward!r}")
    obs = observations_from_panel(panel, spec, feature_config)
    action = panel["action_index"].to_numpy(dtype=np.int64)
    pscore = panel["propensity"].to_numpy(dtype=np.float64)
    logged = (action >= 0) & ~np.isnan(pscore)
    if not logged.any():
        raise DataValidationError(Problem(
            "interventions", None, "propensity",
            "logged interventions with a propensity (off-policy evaluation needs them)",
            "none" if (action >= 0).any() else "no logged interventions"))
    bad = logged & ~((pscore > 0) & (pscore <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataValidationError(Problem(
            "panel", i, "propensity", "a probability in (0, 1]",
            f"{pscore[i]} (user {panel['user_id'].iloc[i]!r}, period {panel['period'].iloc[i]})",
            count=int(bad.sum())))
    revenue = panel["revenue"].to_numpy(dtype=np.float64)
    bought = panel["purchases"].to_numpy() > 0
    if reward == "revenue":
        r = revenue
    elif reward == "purchase":
        r = bought.astype(np.float64)
    else:
        cost = np.array([a.cost for a in spec.actions])
        rate = np.array([a.discount_rate if a.kind == "discount" else 0.0 for a in spec.actions])
        a = np.clip(action, 0, None)
        r = revenue - cost[a] - np.where(bought, rate[a] * revenue, 0.0)
    return LoggedData(
        action=action[logged], reward=r[logged], pscore=pscore[logged],
        n_actions=spec.n_actions, obs=obs[logged],
        user_id=panel["user_id"].to_numpy()[logged],
        time_step=panel["period"].to_numpy(dtype=np.int64)[logged],
        action_names=tuple(spec.action_names),
    )
