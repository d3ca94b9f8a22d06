"""Import the Taobao UserBehavior sample (Alibaba Tianchi, 2017) into the data contract.

Mapping: ``pv`` -> ``view``, ``cart`` -> ``cart``, ``fav`` -> ``fav``, ``buy`` -> ``purchase``,
``item_id`` kept (``category_id`` is not part of the contract and is left out). Timestamps are
Unix seconds, hence UTC. There are no prices (``has_prices`` is False) and no interventions
(the catalog is just ``none``).

The data cover nine calendar days in China time, 2017-11-25 to 2017-12-03 (UTC+8); period is
``1D`` with origin 2017-11-25 00:00 UTC+8, i.e. 2017-11-24 16:00 UTC, so periods are China-time
days. Rows outside that window (a known defect of the original: a few timestamps months
early) are dropped and counted as ``before_window`` / ``after_window``.

With ``sessions=True`` (default) ``visit`` events are derived, since the log has none: a
session is a run of one user's events with no gap longer than ``session_gap_minutes``; each
session start gets a ``visit`` at the time of its first event (sorted before it).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from predictors.contract import ActionSpec, DatasetSpec
from predictors.errors import ConfigError
from predictors.importers._common import (
    ImportStats,
    LineIndex,
    bad_rows_problem,
    base_extra,
    check_source,
    event_counts,
    finish_import,
    iso_utc,
    raise_problems,
    require_columns,
)

#: behavior_type -> event_type.
BEHAVIORS = {"pv": "view", "cart": "cart", "fav": "fav", "buy": "purchase"}
#: First instant of the data's window: 2017-11-25 00:00 China time (UTC+8).
WINDOW_START = pd.Timestamp("2017-11-25 00:00", tz="Asia/Shanghai").tz_convert("UTC")
WINDOW_DAYS = 9
PERIOD = "1D"
_COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")


def import_taobao(
    src: str | Path,
    out: str | Path,
    *,
    sessions: bool = True,
    session_gap_minutes: float = 30.0,
    overwrite: bool = False,
) -> Path:
    """Convert the Taobao UserBehavior CSV (with header) into a dataset folder.

    Args:
        src: ``taobao_userbehavior_sample.csv`` or another slice of ``UserBehavior.csv`` with
            the header ``user_id,item_id,category_id,behavior_type,timestamp``.
        out: Dataset folder to write.
        sessions: Derive ``visit`` events at session starts.
        session_gap_minutes: Inactivity (minutes) that ends a session; > 0.
        overwrite: Replace a dataset already in ``out``.

    Returns:
        ``out``.

    Raises:
        DataValidationError: A column is missing or a value cannot be parsed (the error names
            the line and column).

    Example:
        >>> import_taobao("taobao_userbehavior_sample.csv", "data/taobao")  # doctest: +SKIP
        PosixPath('data/taobao')
    """
    path = check_source(src)
    if not (session_gap_minutes > 0):
        raise ConfigError(f"`session_gap_minutes` must be > 0; got {session_gap_minutes!r}")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    require_columns(raw, _COLUMNS, path.name)
    lines = LineIndex(path, len(raw))
    user = pd.to_numeric(raw["user_id"].str.strip(), errors="coerce")
    item = pd.to_numeric(raw["item_id"].str.strip(), errors="coerce")
    secs = pd.to_numeric(raw["timestamp"].str.strip(), errors="coerce")
    behavior = raw["behavior_type"].str.strip()
    raise_problems([
        bad_rows_problem(lines, user.isna() | (user % 1 != 0), "user_id", "an integer id",
                         raw["user_id"]),
        bad_rows_problem(lines, item.isna() | (item % 1 != 0), "item_id", "an integer id",
                         raw["item_id"]),
        bad_rows_problem(lines, ~behavior.isin(list(BEHAVIORS)), "behavior_type",
                         f"one of {list(BEHAVIORS)}", raw["behavior_type"]),
        bad_rows_problem(lines, secs.isna() | (secs % 1 != 0) | (secs < 0), "timestamp",
                         "Unix time in whole seconds", raw["timestamp"]),
    ])
    ts = pd.to_datetime(secs.astype("int64"), unit="s", utc=True)
    end = WINDOW_START + pd.Timedelta(days=WINDOW_DAYS)
    before = (ts < WINDOW_START).to_numpy()
    after = (ts >= end).to_numpy()
    keep = ~(before | after)

    events = pd.DataFrame({
        "user_id": user[keep].astype("int64"),
        "timestamp": ts[keep],
        "event_type": behavior[keep].map(BEHAVIORS).astype(str),
        "item_id": item[keep].astype("Int64"),
    })
    n_visits = 0
    if sessions:
        visits = derive_visits(events, pd.Timedelta(minutes=session_gap_minutes))
        n_visits = len(visits)
        events = pd.concat([visits, events], ignore_index=True)  # visits sort first on ties

    stats = ImportStats(
        rows_read=len(raw), rows_kept=int(keep.sum()),
        rows_dropped={"before_window": int(before.sum()), "after_window": int(after.sum())},
        details={
            "events": event_counts(events),
            "n_users": int(events["user_id"].nunique()),
            "n_users_read": int(user.nunique()),
            "users_with_dropped_rows": int(user[~keep].nunique()),
            "window_utc": [iso_utc(WINDOW_START), iso_utc(end)],
            "visits": (f"derived: one per session start, session gap {session_gap_minutes:g} "
                       "minutes" if sessions else "none (sessions=False)"),
            "visits_derived": n_visits,
            "event_mapping": BEHAVIORS,
        },
    )
    spec = DatasetSpec(
        actions=(ActionSpec("none", 0.0, "none"),),
        period=PERIOD,
        currency="CNY",
        source=("UserBehavior, Alibaba Tianchi dataset 649; Zhu et al. (2018), Learning "
                "Tree-based Deep Model for Recommender Systems, KDD"),
        licence="Tianchi terms: research and non-commercial use; cite the source",
        origin=iso_utc(WINDOW_START),
        has_prices=False,
        extra=base_extra("taobao", path, stats),
    )
    options = {"sessions": sessions, "session_gap_minutes": session_gap_minutes,
               "overwrite": overwrite}
    return finish_import(out, overwrite, "taobao", path, options, spec, stats, events)


def derive_visits(events: pd.DataFrame, gap: pd.Timedelta) -> pd.DataFrame:
    """One ``visit`` event per session start (a gap > ``gap`` or a new user starts a session).

    Args:
        events: ``user_id`` and ``timestamp`` columns, any order.
        gap: Longest inactivity inside one session.

    Returns:
        Events with ``event_type`` ``visit`` at each session's first timestamp.

    Example:
        >>> t = pd.to_datetime(["2020-01-01 10:00", "2020-01-01 10:20", "2020-01-01 11:00"],
        ...                    utc=True)
        >>> ev = pd.DataFrame({"user_id": [1, 1, 1], "timestamp": t})
        >>> derive_visits(ev, pd.Timedelta(minutes=30))["timestamp"].dt.strftime("%H:%M").tolist()
        ['10:00', '11:00']
    """
    ordered = events[["user_id", "timestamp"]].sort_values(["user_id", "timestamp"],
                                                           kind="stable")
    new_user = ordered["user_id"].ne(ordered["user_id"].shift()).to_numpy()
    idle = (ordered["timestamp"].diff() > gap).to_numpy()
    starts = ordered[new_user | idle].reset_index(drop=True)
    starts["event_type"] = "visit"
    starts["item_id"] = pd.array([pd.NA] * len(starts), dtype="Int64")
    return starts
