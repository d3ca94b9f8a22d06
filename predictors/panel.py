"""The user x period panel, built out of core with DuckDB.

:func:`build_panel` aggregates the event and intervention logs into one row per user and decision
period. DuckDB runs the query over the files under a hard memory cap and spills to a temporary
folder beyond it, so logs far larger than memory can be summarised.

Periods: period ``k`` covers ``[origin + k * P, origin + (k + 1) * P)`` where ``P`` is the spec's
period length and ``origin`` is ``dataset.json``'s ``origin`` or, when null, the earliest
timestamp over events and interventions floored to the (UTC) day. Rows before ``origin`` are
dropped with a warning. The last period is the one holding the last event or intervention, or,
when ``dataset.json`` sets ``observed_until``, the one holding the instant before it (rows at or
after it are dropped with a warning), so a quiet last week still counts as exposure.

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

import tempfile
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from predictors.dataset import Dataset, open_dataset
from predictors.errors import DataValidationError, NudgeGymError, Problem
from predictors.loaders import user_id_type
from predictors.tables import (
    connect,
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
        validate: Validate the dataset first (its warnings are emitted with
            :func:`warnings.warn`). When off, the values are trusted, except that unparseable
            timestamps, empty user ids and unknown actions still raise DataValidationError
            (after a validation run that names them).

    Returns:
        One row per user and period, sorted by ``user_id``, ``period``.

    Raises:
        DataValidationError: The dataset breaks the data contract.

    Example:
        >>> try:
        ...     build_panel("no/such/folder")
        ... except DataValidationError as e:
        ...     print(e.problems[0].expected)
        a dataset folder
    """
    folder = (dataset_or_folder.folder if isinstance(dataset_or_folder, Dataset)
              else Path(dataset_or_folder))
    if validate:
        for p in check_dataset(folder, memory_limit=memory_limit, threads=threads):
            warnings.warn(str(p), UserWarning, stacklevel=2)
    ds = (dataset_or_folder if isinstance(dataset_or_folder, Dataset)
          else open_dataset(folder))
    return _panel(ds, memory_limit, threads)


def _panel(ds: Dataset, memory_limit: str, threads: int | None,
           bounds: tuple[int, int] | None = None) -> pd.DataFrame:
    """The panel of an opened dataset (no validation run); ``bounds`` as in :func:`_build`."""
    folder = ds.folder
    with tempfile.TemporaryDirectory(prefix="nudgegym-panel-") as tmp:
        try:
            con = connect(memory_limit, threads, tmp)
            try:
                parts = _build(con, ds, Path(tmp), bounds)
            finally:
                con.close()
        except duckdb.Error as e:
            problems = validate_dataset(folder, memory_limit=memory_limit, threads=threads)
            if any(p.severity == "error" for p in problems):
                raise DataValidationError(problems, context=str(folder)) from None
            raise NudgeGymError(f"{folder}: building the panel failed: {e}") from e
        # DuckDB is closed (its memory released) before the dense panel is assembled from the
        # sparse user-periods it left on disk.
        df = parts if isinstance(parts, pd.DataFrame) else _expand(*parts)
    for col, dtype in _DTYPES.items():
        df[col] = df[col].astype(dtype)
    if df["user_id"].dtype == object:
        df["user_id"] = df["user_id"].astype("str")
    return df


def register_views(con: duckdb.DuckDBPyConnection, ds: Dataset) -> tuple[str, bool, str]:
    """Register views ``ev`` (and ``iv``) of the panel query.

    Returns:
        (DuckDB type of ``user_id``, whether there are interventions, SQL of all
        ``(user_id, t)`` with ``t`` in epoch microseconds).
    """
    uid = user_id_type(con, ds)  # registers views events / interventions
    ev_t = {str(r[0]): str(r[1]) for r in con.execute("DESCRIBE events").fetchall()}
    rev = number_sql("revenue", ev_t["revenue"]) if "revenue" in ev_t else "NULL"
    types = "[" + ", ".join(lit(t) for t in COUNT_COLUMNS.values()) + "]"
    # Event types match exactly (as validation does); other types get code 0 and are not counted.
    con.execute(
        f"CREATE TEMP VIEW ev AS SELECT {id_sql('user_id', uid)} AS user_id, "
        f"epoch_us({timestamp_sql('timestamp', ev_t['timestamp'])}) AS t, "
        f"coalesce(list_position({types}, CAST(event_type AS VARCHAR)), 0)::UTINYINT AS code, "
        f"CAST({rev} AS DOUBLE) AS rev FROM events")
    has_iv = ds.interventions_path is not None
    if has_iv:
        iv_t = {str(r[0]): str(r[1]) for r in con.execute("DESCRIBE interventions").fetchall()}
        prop = number_sql("propensity", iv_t["propensity"]) if "propensity" in iv_t else "NULL"
        con.execute(
            f"CREATE TEMP VIEW iv AS SELECT {id_sql('user_id', uid)} AS user_id, "
            f"epoch_us({timestamp_sql('timestamp', iv_t['timestamp'])}) AS t, "
            f"CAST(action AS VARCHAR) AS action, CAST({prop} AS DOUBLE) AS prop, "
            f"row_number() OVER () AS rn FROM interventions")
    times = "SELECT user_id, t FROM ev" + (" UNION ALL SELECT user_id, t FROM iv"
                                           if has_iv else "")
    return uid, has_iv, times


def _build(con: duckdb.DuckDBPyConnection, ds: Dataset, tmp: Path,
           bounds: tuple[int, int] | None = None) -> pd.DataFrame | tuple:
    """Aggregate the sparse user-periods in DuckDB into ``tmp``; return what :func:`_expand`
    needs (or the empty panel).

    ``bounds``: the (first, last) timestamp in epoch microseconds of the whole dataset, for a
    part of it (a partition of its users): origin and last period then are the whole's.
    """
    spec = ds.spec
    uid, has_iv, times = register_views(con, ds)
    t_min, t_max, n_bad = con.execute(
        f"SELECT min(t), max(t), count(*) FILTER (WHERE t IS NULL OR user_id IS NULL) "
        f"FROM ({times})").fetchone()
    if n_bad:
        raise duckdb.ConversionException(f"{n_bad} rows without a user id or a valid timestamp")
    if t_min is None:
        return _empty(uid)
    if bounds is not None:
        t_min, t_max = bounds
    origin = origin_timestamp(spec)
    day = 86_400_000_000
    o_us = int(origin.value // 1000) if origin is not None else (t_min // day) * day
    p_us = spec.period_seconds * 1_000_000
    if t_min < o_us:
        early = con.execute(f"SELECT count(*) FROM ({times}) WHERE t < {o_us}").fetchone()[0]
        warnings.warn(f"{ds.folder}: {early} events/interventions before origin "
                      f"{spec.origin} are left out of the panel", UserWarning, stacklevel=3)
    until = origin_timestamp(spec, "observed_until")
    u_us = int(until.value // 1000) if until is not None else t_max + 1
    if u_us <= o_us:
        raise DataValidationError(Problem("dataset.json", None, "observed_until",
                                          f"a time after the origin ({iso_origin(o_us)})",
                                          repr(spec.observed_until)))
    if t_max >= u_us:
        late = con.execute(f"SELECT count(*) FROM ({times}) WHERE t >= {u_us}").fetchone()[0]
        warnings.warn(f"{ds.folder}: {late} events/interventions at or after observed_until "
                      f"{spec.observed_until} are left out of the panel", UserWarning,
                      stacklevel=3)
    last = int((u_us - 1 - o_us) // p_us)
    period = f"((t - {o_us}) // {p_us})::INTEGER"
    counts = ", ".join(f"count_if(code = {i})::INTEGER AS {c}"
                       for i, c in enumerate(COUNT_COLUMNS, start=1))
    names = "[" + ", ".join(lit(n) for n in spec.action_names) + "]::VARCHAR[]"
    act = (f"SELECT user_id, {period} AS period, action, prop FROM iv WHERE t >= {o_us} "
           f"AND t < {u_us} "
           f"QUALIFY row_number() OVER (PARTITION BY user_id, {period} ORDER BY t, rn) = 1"
           if has_iv else f"SELECT NULL::{uid} AS user_id, NULL::INTEGER AS period, "
           "NULL::VARCHAR AS action, NULL::DOUBLE AS prop WHERE false")
    fills = ", ".join(f"coalesce(a.{c}, 0)::INTEGER AS {c}" for c in COUNT_COLUMNS)
    con.execute(f"""
    CREATE TEMP TABLE sparse AS
    WITH agg AS (
        SELECT user_id, {period} AS period, {counts},
               coalesce(sum(rev) FILTER (WHERE code = 4), 0)::DOUBLE AS revenue
        FROM ev WHERE t >= {o_us} AND t < {u_us} GROUP BY ALL),
    act AS ({act})
    SELECT coalesce(a.user_id, c.user_id) AS user_id, coalesce(a.period, c.period) AS period,
           {fills}, coalesce(a.revenue, 0)::DOUBLE AS revenue, a.user_id IS NOT NULL AS has_ev,
           c.action, coalesce(list_position({names}, c.action) - 1, -2)::SMALLINT AS ai,
           coalesce(c.prop, 'NaN'::DOUBLE) AS prop
    FROM agg a FULL OUTER JOIN act c ON a.user_id = c.user_id AND a.period = c.period""")
    unknown = con.execute("SELECT action FROM sparse WHERE action IS NOT NULL AND ai = -2 "
                          "LIMIT 1").fetchone()
    if unknown:
        raise duckdb.ConversionException(f"unknown action {unknown[0]!r}")
    con.execute("CREATE TEMP TABLE panel_users AS SELECT user_id, min(period) AS first_p, "
                "coalesce(max(period) FILTER (WHERE has_ev), -1) AS last_ev, "
                "row_number() OVER (ORDER BY user_id) - 1 AS uix FROM sparse GROUP BY user_id")
    users = con.execute("SELECT user_id, first_p, last_ev FROM panel_users "
                        "ORDER BY uix").fetchnumpy()
    sparse = tmp / "sparse.parquet"
    con.execute(f"COPY (SELECT u.uix, s.period, {', '.join('s.' + c for c in COUNT_COLUMNS)}, "
                "s.revenue, s.ai, s.prop FROM sparse s JOIN panel_users u USING (user_id)) "
                f"TO {lit(str(sparse))} (FORMAT parquet)")
    default = spec.action_names.index("none") if has_iv and "none" in spec.action_names else -1
    return users, sparse, last, default, spec.action_names


def iso_origin(us: int) -> str:
    """Microseconds since the epoch as an ISO 8601 UTC time."""
    return pd.Timestamp(us, unit="us", tz="UTC").isoformat()


def _expand(users: dict[str, np.ndarray], sparse: Path, last: int, default: int,
            names: list[str]) -> pd.DataFrame:
    """Dense panel from per-user spans and the sparse user-periods (vectorised scatter).

    Built column by column with int32 temporaries, reading one sparse column at a time, so the
    peak stays near the size of the output frame.
    """
    first = users["first_p"].astype(np.int64)
    n = last + 1 - first
    total = int(n.sum())
    offsets = np.concatenate([[0], np.cumsum(n)[:-1]])
    # period runs first[u] .. last for each user: a cumulative sum of +1 steps that jumps back
    # to first[u] at each user's offset.
    period = np.ones(total, dtype=np.int32)
    if total:
        period[offsets] = np.concatenate([[first[0]], first[1:] - last]).astype(np.int32)
    np.cumsum(period, out=period)
    pf = pq.ParquetFile(sparse)

    def column(name: str) -> np.ndarray:
        return pf.read(columns=[name]).column(0).to_numpy()

    uix = column("uix")
    pos = offsets[uix] - first[uix]
    del uix
    pos += column("period")
    out: dict[str, object] = {"user_id": np.repeat(users["user_id"], n), "period": period}
    for c in COUNT_COLUMNS:
        col = np.zeros(total, dtype=np.int32)
        col[pos] = column(c)
        out[c] = col
    revenue = np.zeros(total)
    revenue[pos] = column("revenue")
    ai = column("ai")
    logged = ai >= 0
    pos, ai = pos[logged], ai[logged]
    index = np.full(total, default, dtype=np.int16)
    index[pos] = ai
    prop = np.full(total, np.nan)
    prop[pos] = column("prop")[logged]
    del pos, ai, logged
    categories = pd.Index(list(names), dtype="str")
    out.update({
        "revenue": revenue,
        "action": pd.Categorical.from_codes(index, categories=categories).astype("str"),
        "action_index": index,
        "propensity": prop,
        "active": period <= np.repeat(users["last_ev"].astype(np.int32), n),
    })
    return pd.DataFrame(out, copy=False)


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
