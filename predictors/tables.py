"""DuckDB access to the tables of a dataset folder, shared by validation, loaders and the panel.

Every reader of a dataset table goes through this module, so that validation, the pandas loaders
and the out-of-core panel builder interpret a value the same way:

* CSV files are read with fixed options (comma, double quote, header line) and every column as
  text; the typed expressions below do the parsing. Parquet columns keep their stored types.
* ``timestamp`` is an ISO 8601 string (a missing offset means UTC), a Parquet timestamp/date
  (naive means UTC) or a number of epoch seconds.
* ``user_id`` / ``item_id`` are returned as integers when every value in every table is an
  integer (stored as one, or written without leading zeros); otherwise as strings.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from predictors.contract import DatasetSpec
from predictors.errors import DataValidationError, Problem

#: Options of every CSV scan: fixed dialect, header line, all columns as text.
CSV_OPTIONS = "header=true, delim=',', quote='\"', escape='\"', comment='', all_varchar=true"
#: Timestamps outside this range are reported as unparseable (epoch milliseconds end up here).
TS_MIN, TS_MAX = "1900-01-01", "2200-01-01"
_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
              "UINTEGER", "UBIGINT"}
_NUM_TYPES = _INT_TYPES | {"FLOAT", "DOUBLE", "REAL"}
_INT_TEXT = r"-?(0|[1-9][0-9]{0,17})"


def lit(value: str) -> str:
    """SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    """SQL quoted identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def connect(memory_limit: str = "4GB", threads: int | None = None,
            temp_directory: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB connection with a hard memory cap, UTC time zone and a spill folder.

    Args:
        memory_limit: DuckDB ``memory_limit`` (e.g. ``"4GB"``); work beyond it spills to disk.
        threads: Worker threads; ``None`` lets DuckDB use every core.
        temp_directory: Where to spill; ``None`` keeps DuckDB's default.
    """
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET memory_limit = {lit(memory_limit)}")
    except duckdb.Error as e:
        con.close()
        raise ValueError(f"`memory_limit` must look like '4GB'; got {memory_limit!r}") from e
    if threads is not None:
        if threads < 1:
            con.close()
            raise ValueError(f"`threads` must be >= 1; got {threads}")
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET TimeZone = 'UTC'")
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error:
        # Inside Jupyter without ipywidgets DuckDB refuses to touch this setting; its progress
        # bar only appears for long queries there, so go on without switching it off.
        pass
    if temp_directory is not None:
        con.execute(f"SET temp_directory = {lit(str(temp_directory))}")
    return con


@contextlib.contextmanager
def spilling_connection(memory_limit: str = "4GB",
                        threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """:func:`connect` with a private temporary spill folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="nudgegym-duckdb-") as tmp:
        con = connect(memory_limit, threads, tmp)
        try:
            yield con
        finally:
            con.close()


def scan_sql(path: Path, *, row_numbers: bool = False) -> str:
    """``FROM`` clause text scanning a table file (CSV all text; Parquet with native types).

    With ``row_numbers`` a Parquet scan also yields ``file_row_number`` (0-based).
    """
    if path.suffix == ".csv":
        return f"read_csv({lit(str(path))}, {CSV_OPTIONS})"
    extra = ", file_row_number=true" if row_numbers else ""
    return f"read_parquet({lit(str(path))}{extra})"


def column_types(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    """Column name -> DuckDB type of a scan or table."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    return {r[0]: str(r[1]) for r in rows}


def _base(duck_type: str) -> str:
    return duck_type.split("(")[0].strip().upper()


def text_sql(col: str) -> str:
    """Column as trimmed text, empty strings as NULL."""
    return f"NULLIF(trim(CAST({ident(col)} AS VARCHAR)), '')"


def number_sql(col: str, duck_type: str) -> str:
    """Column as DOUBLE; NULL when missing or not a number."""
    if _base(duck_type) in _NUM_TYPES or _base(duck_type) == "DECIMAL":
        return f"CAST({ident(col)} AS DOUBLE)"
    return f"TRY_CAST({text_sql(col)} AS DOUBLE)"


def timestamp_sql(col: str, duck_type: str) -> str:
    """Column as TIMESTAMPTZ (UTC); NULL when missing or unparseable."""
    base = _base(duck_type)
    if base.startswith("TIMESTAMP") or base == "DATE":
        return f"CAST({ident(col)} AS TIMESTAMPTZ)"
    num = number_sql(col, duck_type)
    if base in _NUM_TYPES or base == "DECIMAL":
        return f"try(to_timestamp({num}))"
    txt = text_sql(col)
    return (f"(CASE WHEN {num} IS NOT NULL THEN try(to_timestamp({num})) "
            f"ELSE TRY_CAST({txt} AS TIMESTAMPTZ) END)")


def id_type(con: duckdb.DuckDBPyConnection, columns: list[tuple[str, str, str]]) -> str:
    """``BIGINT`` when every value of the given id columns is an integer, else ``VARCHAR``.

    Args:
        con: Connection.
        columns: ``(source, column, duck_type)`` of each table's id column.
    """
    for source, col, duck_type in columns:
        base = _base(duck_type)
        if base in _INT_TYPES:
            continue
        if base != "VARCHAR":
            return "VARCHAR"
        ok = con.execute(
            f"SELECT coalesce(bool_and(regexp_full_match({text_sql(col)}, '{_INT_TEXT}')), true)"
            f" FROM {source} WHERE {text_sql(col)} IS NOT NULL").fetchone()
        if not (ok and ok[0]):
            return "VARCHAR"
    return "BIGINT"


def id_sql(col: str, target: str) -> str:
    """Id column cast to ``target`` (see :func:`id_type`)."""
    if target == "BIGINT":
        return f"CAST({ident(col)} AS BIGINT)"
    return text_sql(col)


def utc_timestamp(value: object, naive_timezone: str = "UTC") -> pd.Timestamp | None:
    """``value`` (ISO 8601 text or a timestamp) in UTC, a naive time read in
    ``naive_timezone``; ``None`` when it is not a time (callers say which option was wrong).

    Example:
        >>> utc_timestamp("2024-01-01T09:00:00+01:00")
        Timestamp('2024-01-01 08:00:00+0000', tz='UTC')
        >>> utc_timestamp("someday") is None
        True
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if pd.isna(ts):
        return None
    if ts.tzinfo is None:
        ts = ts.tz_localize(naive_timezone)
    return ts.tz_convert("UTC")


def origin_timestamp(spec: DatasetSpec, field: str = "origin") -> pd.Timestamp | None:
    """``spec.origin`` (or another timestamp field, e.g. ``observed_until``) as a UTC
    timestamp, or ``None`` when not set."""
    value = getattr(spec, field)
    if value is None:
        return None
    ts = utc_timestamp(value)
    if ts is None:
        raise DataValidationError(Problem("dataset.json", None, field,
                                          "an ISO 8601 timestamp or null", repr(value)))
    return ts


@dataclass(frozen=True)
class TableScan:
    """One table file registered as a DuckDB view.

    Attributes:
        file: File name inside the dataset folder (for messages).
        view: Name of the view.
        types: Column name -> DuckDB type.
    """

    file: str
    view: str
    types: dict[str, str]


def register(con: duckdb.DuckDBPyConnection, path: Path, view: str) -> TableScan:
    """Register ``path`` as view ``view``; unreadable files raise DataValidationError."""
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {ident(view)} AS SELECT * FROM {scan_sql(path)}")
        types = column_types(con, ident(view))
    except duckdb.Error as e:
        raise DataValidationError(unreadable(path.name, e)) from None
    return TableScan(path.name, ident(view), types)


def unreadable(file: str, err: Exception) -> Problem:
    """Problem for a file DuckDB cannot read."""
    kind = "a UTF-8 CSV file with a header line" if file.endswith(".csv") else "a Parquet file"
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return Problem(file, None, None, f"a readable table ({kind})", msg[:300])
