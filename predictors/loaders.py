"""Load a validated dataset's tables into pandas with normalised dtypes.

Every loader validates the dataset first (unless told not to) and raises
:class:`~predictors.errors.DataValidationError` listing every error, so a bad file never
half-loads. Columns of the returned frames:

* events: ``user_id`` (int64 or str, see :mod:`predictors.tables`), ``timestamp``
  (``datetime64[us, UTC]``), ``event_type`` (str), ``item_id`` (int64 or str; only when the file
  has it), ``revenue`` (float64, NaN when missing), then any other columns as stored.
* interventions: ``user_id``, ``timestamp``, ``action`` (str), ``propensity`` (float64, NaN when
  not logged), then any other columns.
* users: ``user_id`` plus the static features (CSV types as DuckDB detects them).

Rows keep their file order.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import pandas as pd

from predictors.dataset import Dataset, open_dataset
from predictors.errors import DataValidationError
from predictors.tables import (
    id_sql,
    id_type,
    ident,
    lit,
    number_sql,
    register,
    spilling_connection,
    timestamp_sql,
    unreadable,
)
from predictors.validate import check_dataset

_EVENT_COLS = ("user_id", "timestamp", "event_type", "item_id", "revenue")
_INTERVENTION_COLS = ("user_id", "timestamp", "action", "propensity")


def load_dataset(folder: str | Path, *, memory_limit: str = "2GB") -> Dataset:
    """Validate a dataset folder and return its :class:`Dataset`.

    Warnings (legal but suspicious findings) are emitted with :func:`warnings.warn`.

    Raises:
        DataValidationError: The dataset has at least one error; ``problems`` lists them all.

    Example:
        >>> try:
        ...     load_dataset("no/such/folder")
        ... except DataValidationError as e:
        ...     print(e.problems[0].expected)
        a dataset folder
    """
    for p in check_dataset(folder, memory_limit=memory_limit):
        warnings.warn(str(p), UserWarning, stacklevel=2)
    return open_dataset(folder)


def load_events(dataset: Dataset | str | Path, *, validate: bool = True,
                memory_limit: str = "2GB") -> pd.DataFrame:
    """The events table as a DataFrame (columns in the module docstring).

    Args:
        dataset: A :class:`Dataset` or a dataset folder.
        validate: Validate the dataset first (turn off only for a dataset just validated).
        memory_limit: DuckDB memory cap while reading.
    """
    ds = _resolve(dataset, validate, memory_limit)
    return _load(ds, "events", ds.events_path, memory_limit)


def load_interventions(dataset: Dataset | str | Path, *, validate: bool = True,
                       memory_limit: str = "2GB") -> pd.DataFrame:
    """The interventions table (empty with the standard columns when the dataset has none)."""
    ds = _resolve(dataset, validate, memory_limit)
    if ds.interventions_path is None:
        return pd.DataFrame({
            "user_id": pd.Series([], dtype="int64"),
            "timestamp": pd.Series([], dtype="datetime64[us, UTC]"),
            "action": pd.Series([], dtype="str"),
            "propensity": pd.Series([], dtype="float64"),
        })
    return _load(ds, "interventions", ds.interventions_path, memory_limit)


def load_users(dataset: Dataset | str | Path, *, validate: bool = True,
               memory_limit: str = "2GB") -> pd.DataFrame:
    """The users table (empty with a ``user_id`` column when the dataset has none)."""
    ds = _resolve(dataset, validate, memory_limit)
    if ds.users_path is None:
        return pd.DataFrame({"user_id": pd.Series([], dtype="int64")})
    return _load(ds, "users", ds.users_path, memory_limit)


def _resolve(dataset: Dataset | str | Path, validate: bool, memory_limit: str) -> Dataset:
    folder = dataset.folder if isinstance(dataset, Dataset) else Path(dataset)
    if validate:
        for p in check_dataset(folder, memory_limit=memory_limit):
            warnings.warn(str(p), UserWarning, stacklevel=3)
    return dataset if isinstance(dataset, Dataset) else open_dataset(folder)


def user_id_type(con: duckdb.DuckDBPyConnection, ds: Dataset) -> str:
    """DuckDB type (``BIGINT`` or ``VARCHAR``) of ``user_id`` across the dataset's tables.

    Registers views ``events``, ``interventions`` and ``users`` for the tables present.
    """
    cols = []
    for name, path in (("events", ds.events_path), ("interventions", ds.interventions_path),
                       ("users", ds.users_path)):
        if path is not None:
            scan = register(con, path, name)
            cols.append((scan.view, "user_id", scan.types.get("user_id", "VARCHAR")))
    return id_type(con, cols)


def _load(ds: Dataset, name: str, path: Path, memory_limit: str) -> pd.DataFrame:
    with spilling_connection(memory_limit) as con:
        try:
            uid = user_id_type(con, ds)
            scan = register(con, path, name)
            t = scan.types
            select = [f"{id_sql('user_id', uid)} AS user_id"]
            if name == "users":
                # Static features keep the types DuckDB detects (CSV) or stores (Parquet).
                src = (f"read_csv({lit(str(path))}, header=true, delim=',', quote='\"', "
                       f"escape='\"', comment='', types={{'user_id': 'VARCHAR'}})"
                       if path.suffix == ".csv" else scan.view)
                rest = [ident(c) for c in t if c != "user_id"]
                sql = f"SELECT {', '.join(select + rest)} FROM {src}"
                return _to_pandas(con, sql, {})
            # Naive UTC out of DuckDB (its tz-aware conversion is deprecated in pandas 3).
            ts = timestamp_sql("timestamp", t["timestamp"])
            select.append(f"CAST({ts} AS TIMESTAMP) AS timestamp")
            if name == "events":
                select.append('CAST("event_type" AS VARCHAR) AS event_type')
                if "item_id" in t:
                    item = id_type(con, [(scan.view, "item_id", t["item_id"])])
                    select.append(f"{id_sql('item_id', item)} AS item_id")
                rev = number_sql("revenue", t["revenue"]) if "revenue" in t else "NULL"
                select.append(f"CAST({rev} AS DOUBLE) AS revenue")
                known = _EVENT_COLS
                strings = ["event_type"]
            else:
                select.append('CAST("action" AS VARCHAR) AS action')
                prop = number_sql("propensity", t["propensity"]) if "propensity" in t else "NULL"
                select.append(f"CAST({prop} AS DOUBLE) AS propensity")
                known = _INTERVENTION_COLS
                strings = ["action"]
            select += [ident(c) for c in t if c not in known]
            sql = f"SELECT {', '.join(select)} FROM {scan.view}"
            return _to_pandas(con, sql, {c: "str" for c in strings})
        except duckdb.Error as e:
            raise DataValidationError(unreadable(path.name, e)) from None


def _to_pandas(con: duckdb.DuckDBPyConnection, sql: str, dtypes: dict[str, str]) -> pd.DataFrame:
    df = con.execute(sql).df()
    for col, dtype in dtypes.items():
        df[col] = df[col].astype(dtype)
    if "timestamp" in df.columns:
        df["timestamp"] = df["timestamp"].astype("datetime64[us]").dt.tz_localize("UTC")
    if "user_id" in df.columns and df["user_id"].dtype == object:
        df["user_id"] = df["user_id"].astype("str")
    return df
