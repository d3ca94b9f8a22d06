"""A dataset as it stood at the end of an earlier period (calibration / holdout splits in time).

:func:`cut_dataset` copies a dataset folder and sets ``dataset.json``'s ``observed_until`` to the
start of period ``periods``: the panel of the copy then holds periods ``0 .. periods - 1`` only,
built from the raw logs exactly as if the log had ended there, so nothing derived from later
periods (the ``active`` flag, the churn label, the activity model) leaks into a model fitted on
it. The origin (period 0) is the same as the full dataset's.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd

from predictors.current import _origin
from predictors.dataset import open_dataset
from predictors.errors import ConfigError
from predictors.io import write_json
from predictors.tables import origin_timestamp

__all__ = ["cut_dataset", "period_start"]


def period_start(data: str | Path, period: int) -> pd.Timestamp:
    """UTC start of period ``period`` of the dataset (period 0 starts at its origin)."""
    ds = open_dataset(data)
    return _origin(ds) + period * pd.Timedelta(seconds=ds.spec.period_seconds)


def cut_dataset(data: str | Path, periods: int, out: str | Path) -> Path:
    """Copy dataset ``data`` into ``out`` observed only until the start of period ``periods``.

    Args:
        data: Dataset folder.
        periods: Periods kept (``0 .. periods - 1``); must be >= 1.
        out: New dataset folder (must not exist).

    Returns:
        ``out``. Building its panel warns that the later rows are left out.

    Example:
        >>> cut_dataset("data/shop", 39, "data/shop_first39")  # doctest: +SKIP
    """
    if not isinstance(periods, int) or periods < 1:
        raise ConfigError(f"`periods` must be an integer >= 1; got {periods!r}")
    ds = open_dataset(data)
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out}: already exists; expected a new folder for the cut dataset")
    until = period_start(data, periods)
    if ds.spec.observed_until is not None:
        if until > origin_timestamp(ds.spec, "observed_until"):
            raise ConfigError(f"`periods` {periods}: the dataset is observed only until "
                              f"{ds.spec.observed_until}")
    out.mkdir(parents=True)
    for path in (ds.events_path, ds.interventions_path, ds.users_path):
        if path is not None:
            shutil.copy2(path, out / path.name)
    spec = replace(ds.spec, observed_until=until.isoformat(timespec="seconds"))
    write_json(out / "dataset.json", spec.to_dict())
    return out
