"""Serving features: every user's observation as of the END of the log (or of a given time).

:func:`predictors.observations_from_panel` describes a user at the START of each logged period,
so no panel row holds the state a decision for the next period is made in.
:func:`current_observations` appends one empty period after each user's history and returns the
observation there: exactly the vector a policy was trained on
(:func:`predictors.observation_names`), computed from the raw logs by the same code as the
training features, and equal to what the learned simulator starts its users from
(``envs.simulator.build_start_states``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from predictors.dataset import Dataset, open_dataset
from predictors.errors import ConfigError
from predictors.features import FeatureConfig, observation_names, observations_from_panel
from predictors.tables import utc_timestamp

__all__ = ["as_of_period", "current_observations"]


def _parse_time(text: str | pd.Timestamp, option: str) -> pd.Timestamp:
    ts = utc_timestamp(text)
    if ts is None:
        raise ConfigError(f"`{option}` {text!r}: expected an ISO 8601 time such as "
                          "2024-06-01 or 2024-06-01T00:00:00Z")
    return ts


def _origin(ds: Dataset) -> pd.Timestamp:
    """Start of period 0 (``dataset.json``'s origin, else the first logged day, UTC)."""
    from predictors.loaders import user_id_type
    from predictors.tables import origin_timestamp, spilling_connection, timestamp_sql

    origin = origin_timestamp(ds.spec)
    if origin is not None:
        return origin
    with spilling_connection("1GB") as con:
        user_id_type(con, ds)
        views = ["events"] + (["interventions"] if ds.interventions_path is not None else [])
        firsts = []
        for v in views:
            types = {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {v}").fetchall()}
            ts = timestamp_sql("timestamp", types["timestamp"])
            firsts.append(con.execute(f"SELECT epoch_us(min({ts})) FROM {v}").fetchone()[0])
    first = min(f for f in firsts if f is not None)
    return pd.Timestamp(first, unit="us", tz="UTC").floor("D")


def as_of_period(data: str | Path | Dataset, as_of: str | pd.Timestamp,
                 option: str = "as_of") -> int:
    """The period a decision at time ``as_of`` is made in: the periods before it are complete.

    A time inside period ``k`` gives ``k`` (the observation uses periods ``0..k-1``).
    """
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    ts = _parse_time(as_of, option)
    origin = _origin(ds)
    k = (ts - origin) // pd.Timedelta(seconds=ds.spec.period_seconds)
    if k < 1:
        raise ConfigError(f"`{option}` {ts.isoformat()}: before the end of the first period "
                          f"(origin {origin.isoformat()}, period {ds.spec.period}); no history "
                          "to describe users with")
    return int(k)


def current_observations(data: str | Path | Dataset, *, as_of: str | pd.Timestamp | None = None,
                         panel: pd.DataFrame | None = None,
                         feature_config: FeatureConfig | None = None) -> pd.DataFrame:
    """Each user's observation after the last logged period (or at ``as_of``).

    Args:
        data: Dataset folder (or an opened dataset).
        as_of: Decision time: only periods that ended by then are used (default: after the
            dataset's last period, i.e. the state the next decision is made in).
        panel: The dataset's panel, if already built (``predictors.build_panel``).
        feature_config: Observation options (the default is what policies are trained on).

    Returns:
        One row per user with history before the decision period: ``user_id``, then the
        columns of :func:`predictors.observation_names` (float32), sorted by ``user_id``. The
        frame's ``attrs["period"]`` is the decision period.

    Raises:
        ConfigError: ``as_of`` unparseable or before the end of the first period.
    """
    from predictors.panel import build_panel

    ds = data if isinstance(data, Dataset) else open_dataset(data)
    if panel is None:
        panel = build_panel(ds)
    last = int(panel["period"].max()) if len(panel) else -1
    period = last + 1 if as_of is None else min(as_of_period(ds, as_of, "as_of"), last + 1)
    hist = panel[panel["period"] < period]
    users = hist["user_id"].drop_duplicates().to_numpy()
    extra = pd.DataFrame({"user_id": users, "period": period})
    for c in hist.columns:
        if c not in extra.columns:
            extra[c] = np.zeros(len(users), dtype=hist[c].dtype) if c != "action" else None
    extra["action_index"] = -1
    extra["_current"] = True
    rows = pd.concat([hist.assign(_current=False), extra], ignore_index=True)
    rows = rows.sort_values(["user_id", "period"], kind="stable").reset_index(drop=True)
    obs = observations_from_panel(rows, ds.spec, feature_config)
    keep = rows["_current"].to_numpy(dtype=bool)
    out = pd.DataFrame(obs[keep], columns=observation_names(feature_config))
    out.insert(0, "user_id", rows.loc[keep, "user_id"].to_numpy())
    out.attrs["period"] = period
    return out
