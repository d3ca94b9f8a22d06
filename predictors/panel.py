"""The user x period panel, built out of core with DuckDB.

:func:`build_panel` aggregates the event and intervention logs into one row per user and decision
period. DuckDB runs the query over the files under a hard memory cap and spills to a temporary
folder beyond it, so logs far larger than memory can be summarised.

Periods: period ``k`` covers ``[origin + k * P, origin + (k + 1) * P)`` where ``P`` is the spec's
period length and ``origin`` is ``dataset.json``'s ``origin`` or, when null, the earliest
timestamp over events and interventions floored to the (UTC) day. Rows before ``origin`` are
dropped with a warning.

Columns of the panel (other modules code against exactly these):

========== ======= ==========================================================================
user_id    as data int64 or str (see :mod:`predictors.tables`)
period     int32   0-based period index
visits     int32   ``visit`` events in the period
views      int32   ``view`` events
carts      int32   ``cart`` events
purchases  int32   ``purchase`` events
favs       int32   ``fav`` events
unsubscribes int32 ``unsubscribe`` events
revenue    float64 sum of purchase revenue (0 when none)
action     str     logged action of the period (the first in time, ties in file order); when
                   none is logged: ``none`` if the catalog has it and the dataset has an
                   interventions table, else missing (NaN)
action_index int16 index of ``action`` in the catalog, -1 when missing
propensity float64 logging propensity of the logged action; NaN when not logged
active     bool    the user has an event in this period or a later one
========== ======= ==========================================================================

Each user has a row for every period from their first (first event or intervention) to the
dataset's last period (the maximum over all events and interventions). Rows are sorted by
``user_id``, ``period``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from predictors.dataset import Dataset, open_dataset
from predictors.errors import DataValidationError, NudgeGymError
from predictors.loaders import user_id_type
from predictors.tables import (
    id_sql,
    lit,
    number_sql,
    origin_timestamp,
    spilling_connection,
    text_sql,
    timestamp_sql,
)
from predictors.validate import check_dataset, validate_dataset

COUNT_COLUMNS = {"visits": "visit", "views": "view", "carts": "cart", "purchases": "purchase",
                 "favs": "fav", "unsubscribes": "unsubscribe"}
PANEL_COLUMNS = ("user_id", "period", *COUNT_COLUMNS, "revenue", "action", "action_index",
                 "propensity", "active")
_DTYPES = {"period": "int32", **{c: "int32" for c in COUNT_COLUMNS}, "revenue": "float64",
           "action": "str", "action_index": "int16", "propensity": "float64", "active": "bool"}


def build_panel(dataset_or_folder: Dataset | str | Path, *, memory_limit: str = "4GB",
                threads: int | None = None, validate: bool = True) -> pd.DataFrame:
    """Build the user x period panel (columns in the module docstring).

    Args:
        dataset_or_folder: A :class:`Dataset` or a dataset folder.
        memory_limit: DuckDB memory cap (e.g. ``"4GB"``); larger work spills to disk.
        threads: DuckDB threads (``None``: all cores).
        validate: Validate the dataset first. When off, values DuckDB cannot convert still
            raise DataValidationError (after a validation run that names them).

    Returns:
        One row per user and period, sorted by ``user_id``, ``period``.

    Raises:
        DataValidationError: The dataset breaks the data contract.

    Example:
        >>> build_panel("no/such/folder")
        Traceback (most recent call last):
        ...
        predictors.errors.DataValidationError: no/such/folder: no/such/folder: expected a \
dataset folder; found no such folder
    """
    folder = (dataset_or_folder.folder if isinstance(dataset_or_folder, Dataset)
              else Path(dataset_or_folder))
    if validate:
        check_dataset(folder, memory_limit=memory_limit, threads=threads)
    ds = (dataset_or_folder if isinstance(dataset_or_folder, Dataset)
          else open_dataset(folder))
    try:
        with spilling_connection(memory_limit, threads) as con:
            df = _build(con, ds)
    except duckdb.Error as e:
        problems = validate_dataset(folder, memory_limit=memory_limit, threads=threads)
        if any(p.severity == "error" for p in problems):
            raise DataValidationError(problems, context=str(folder)) from None
        raise NudgeGymError(f"{folder}: building the panel failed: {e}") from e
    for col, dtype in _DTYPES.items():
        df[col] = df[col].astype(dtype)
    if df["user_id"].dtype == object:
        df["user_id"] = df["user_id"].astype("str")
    return df


def _build(con: duckdb.DuckDBPyConnection, ds: Dataset) -> pd.DataFrame:
    spec = ds.spec
    uid = user_id_type(con, ds)  # registers views events / interventions
    ev_t = {str(r[0]): str(r[1]) for r in con.execute("DESCRIBE events").fetchall()}
    rev = number_sql("revenue", ev_t["revenue"]) if "revenue" in ev_t else "NULL"
    con.execute(
        f"CREATE TEMP VIEW ev AS SELECT {id_sql('user_id', uid)} AS user_id, "
        f"epoch_us({timestamp_sql('timestamp', ev_t['timestamp'])}) AS t, "
        f"{text_sql('event_type')} AS et, CAST({rev} AS DOUBLE) AS rev FROM events")
    has_iv = ds.interventions_path is not None
    if has_iv:
        iv_t = {str(r[0]): str(r[1]) for r in con.execute("DESCRIBE interventions").fetchall()}
        prop = number_sql("propensity", iv_t["propensity"]) if "propensity" in iv_t else "NULL"
        con.execute(
            f"CREATE TEMP VIEW iv AS SELECT {id_sql('user_id', uid)} AS user_id, "
            f"epoch_us({timestamp_sql('timestamp', iv_t['timestamp'])}) AS t, "
            f"{text_sql('action')} AS action, CAST({prop} AS DOUBLE) AS prop, "
            f"row_number() OVER () AS rn FROM interventions")
    times = "SELECT t FROM ev" + (" UNION ALL SELECT t FROM iv" if has_iv else "")
    t_min, t_max = con.execute(f"SELECT min(t), max(t) FROM ({times})").fetchone()
    if t_min is None:
        return _empty(uid)
    origin = origin_timestamp(spec)
    o_us = (int(origin.value // 1000) if origin is not None
            else (t_min // 86_400_000_000) * 86_400_000_000)
    p_us = spec.period_seconds * 1_000_000
    early = con.execute(f"SELECT count(*) FROM ({times}) WHERE t < {o_us}").fetchone()[0]
    if early:
        warnings.warn(f"{ds.folder}: {early} events/interventions before origin "
                      f"{spec.origin} are left out of the panel", UserWarning, stacklevel=3)
    last = (t_max - o_us) // p_us
    counts = ", ".join(f"count(*) FILTER (WHERE et = {lit(t)})::INTEGER AS {c}"
                       for c, t in COUNT_COLUMNS.items())
    period = f"((t - {o_us}) // {p_us})::INTEGER"
    act_cte = (f"act AS (SELECT user_id, {period} AS period, action, prop FROM iv "
               f"WHERE t >= {o_us} QUALIFY row_number() OVER "
               f"(PARTITION BY user_id, {period} ORDER BY t, rn) = 1)" if has_iv else
               "act AS (SELECT NULL::{uid} AS user_id, NULL::INTEGER AS period, "
               "NULL::VARCHAR AS action, NULL::DOUBLE AS prop WHERE false)".replace("{uid}", uid))
    default = lit("none") if has_iv and "none" in spec.action_names else "NULL"
    names = "[" + ", ".join(lit(n) for n in spec.action_names) + "]::VARCHAR[]"
    fills = ", ".join(f"coalesce(a.{c}, 0)::INTEGER AS {c}" for c in COUNT_COLUMNS)
    sql = f"""
    WITH agg AS (
        SELECT user_id, {period} AS period, {counts},
               coalesce(sum(rev) FILTER (WHERE et = 'purchase'), 0)::DOUBLE AS revenue
        FROM ev WHERE t >= {o_us} GROUP BY ALL),
    {act_cte},
    span AS (
        SELECT user_id, min(period) AS first_p, max(period) FILTER (WHERE is_ev) AS last_ev
        FROM (SELECT user_id, period, true AS is_ev FROM agg
              UNION ALL SELECT user_id, period, false FROM act) GROUP BY user_id),
    grid AS (
        SELECT user_id, last_ev, unnest(range(first_p, {last + 1}))::INTEGER AS period
        FROM span)
    SELECT g.user_id, g.period, {fills}, coalesce(a.revenue, 0)::DOUBLE AS revenue,
           coalesce(c.action, {default}) AS action,
           coalesce(list_position({names}, coalesce(c.action, {default})) - 1, -1)::SMALLINT
               AS action_index,
           c.prop AS propensity,
           coalesce(g.period <= g.last_ev, false) AS active
    FROM grid g
    LEFT JOIN agg a ON a.user_id = g.user_id AND a.period = g.period
    LEFT JOIN act c ON c.user_id = g.user_id AND c.period = g.period
    ORDER BY g.user_id, g.period
    """
    return con.execute(sql).df()


def _empty(uid: str) -> pd.DataFrame:
    data = {"user_id": pd.Series([], dtype="int64" if uid == "BIGINT" else "str")}
    data.update({c: pd.Series([], dtype=d) for c, d in _DTYPES.items()})
    return pd.DataFrame(data)[list(PANEL_COLUMNS)]


def panel_summary(panel: pd.DataFrame) -> dict[str, object]:
    """Headline figures of a panel: users, periods, purchase rate, revenue, actions.

    Example:
        >>> panel_summary(_empty("BIGINT"))["users"]
        0
    """
    n = len(panel)
    users = int(panel["user_id"].nunique())
    logged = panel[panel["propensity"].notna()]
    actions = {}
    for name, grp in panel.dropna(subset=["action"]).groupby("action", sort=True):
        p = grp["propensity"].dropna()
        actions[str(name)] = {
            "user_periods": len(grp),
            "logged": len(p),
            "propensity_min": float(p.min()) if len(p) else None,
            "propensity_max": float(p.max()) if len(p) else None,
        }
    revenue = float(panel["revenue"].sum())
    return {
        "users": users,
        "user_periods": n,
        "periods": int(panel["period"].max()) + 1 if n else 0,
        "active_user_periods": int(panel["active"].sum()),
        "purchase_rate": float((panel["purchases"] > 0).mean()) if n else float("nan"),
        "revenue_total": revenue,
        "revenue_per_user": revenue / users if users else float("nan"),
        "logged_interventions": len(logged),
        "actions": actions,
        "events": {c: int(panel[c].sum()) for c in COUNT_COLUMNS},
        "mean_events_per_user_period": float(np.mean(panel[list(COUNT_COLUMNS)].sum(axis=1)))
        if n else float("nan"),
    }


def dataset_summary(dataset_or_folder: Dataset | str | Path, *,
                    memory_limit: str = "4GB") -> dict[str, object]:
    """Summary of a validated dataset: :func:`panel_summary` plus raw event types and dates.

    Returns:
        ``panel_summary`` figures plus ``event_types`` (count per raw type, unknown types
        included), ``first_event`` / ``last_event`` (ISO, UTC), ``period`` and ``origin``.
    """
    folder = (dataset_or_folder.folder if isinstance(dataset_or_folder, Dataset)
              else Path(dataset_or_folder))
    panel = build_panel(folder, memory_limit=memory_limit)
    ds = open_dataset(folder)
    with spilling_connection(memory_limit) as con:
        user_id_type(con, ds)
        types = {str(r[0]): str(r[1]) for r in con.execute("DESCRIBE events").fetchall()}
        ts = timestamp_sql("timestamp", types["timestamp"])
        by_type = con.execute(f"SELECT {text_sql('event_type')} AS et, count(*) FROM events "
                              "GROUP BY et ORDER BY 2 DESC, 1").fetchall()
        first, last = con.execute(
            f"SELECT strftime(min({ts}), '%Y-%m-%dT%H:%M:%SZ'), "
            f"strftime(max({ts}), '%Y-%m-%dT%H:%M:%SZ') FROM events").fetchone()
    return {**panel_summary(panel), "event_types": {str(k): int(v) for k, v in by_type},
            "first_event": first, "last_event": last, "period": ds.spec.period,
            "origin": ds.spec.origin}
