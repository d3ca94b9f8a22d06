"""Check a dataset folder against the data contract, out of core, and report every problem.

:func:`validate_dataset` runs DuckDB queries over the files (with a hard memory cap and a spill
folder), so it scales to files far larger than memory. It returns one :class:`Problem` per kind of
problem per column, showing the first offending row and how many rows share the problem.

Rows are numbered as in the file: for CSV the line an editor shows (header = line 1; blank lines
and quoted line breaks are accounted for); for Parquet the 1-based row.

Severities:

* errors (the dataset cannot be loaded): bad or missing ``dataset.json``; missing files or
  columns; malformed CSV rows; empty ``user_id``; empty or unparseable timestamps; empty event
  types; non-numeric, non-finite or negative revenue; purchases without revenue when
  ``has_prices`` is true; empty or unknown actions; propensities outside (0, 1]; duplicate
  ``user_id`` in the users table (its static features would be ambiguous); no events at all.
* warnings (legal but suspicious): event types the panel does not count; exact duplicate rows in
  events or interventions (real logs do repeat an event within one timestamp's resolution, so a
  duplicate is kept and counted, but flagged); a table present both as CSV and Parquet
  (Parquet is used).

Users with interventions but no events are not flagged: a customer who was sent a campaign and
never came is ordinary (the panel keeps them, with their logged decisions).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from predictors.contract import EXTRA_EVENT_TYPES, KNOWN_EVENT_TYPES, DatasetSpec, read_spec
from predictors.errors import DataValidationError, Problem
from predictors.tables import (
    CSV_OPTIONS,
    TS_MAX,
    TS_MIN,
    ident,
    lit,
    number_sql,
    origin_timestamp,
    spilling_connection,
    text_sql,
    timestamp_sql,
    unreadable,
)

TABLES = ("events", "interventions", "users")
REQUIRED = {"events": ("user_id", "timestamp", "event_type"),
            "interventions": ("user_id", "timestamp", "action"),
            "users": ("user_id",)}
_ROW = "__nudgegym_row"
_EMPTY = "an empty value"
_TS_EXPECTED = f"an ISO 8601 timestamp or epoch seconds (UTC), between {TS_MIN} and {TS_MAX}"


@dataclass
class _Table:
    name: str
    file: str
    view: str  # quoted view name with column _ROW (0-based record key)
    types: dict[str, str]
    to_row: Callable[[list[int]], dict[int, int]]


@dataclass(frozen=True)
class _Check:
    column: str | None
    condition: str  # SQL, true on offending rows
    expected: str
    value: str | None = None  # SQL of the value shown as "found" (default: the column)
    found: str | None = None  # fixed "found" text instead of the value
    severity: str = "error"


def validate_dataset(folder: str | Path, *, memory_limit: str = "2GB",
                     threads: int | None = None) -> list[Problem]:
    """Check every file of a dataset folder and return all problems, errors first.

    Args:
        folder: The dataset folder.
        memory_limit: DuckDB memory cap; larger work spills to a temporary folder.
        threads: DuckDB threads (``None``: all cores).

    Returns:
        Every problem found (empty when the dataset is valid).

    Example:
        >>> problems = validate_dataset("no/such/folder")
        >>> problems[0].expected
        'a dataset folder'
    """
    folder = Path(folder)
    if not folder.is_dir():
        return [Problem(str(folder), None, None, "a dataset folder", "no such folder")]
    problems: list[Problem] = []
    spec: DatasetSpec | None = None
    try:
        spec = read_spec(folder)
        origin_timestamp(spec)
    except DataValidationError as e:
        problems += e.problems
    paths = _table_paths(folder, problems)
    with spilling_connection(memory_limit, threads) as con:
        tables: dict[str, _Table] = {}
        for name, path in paths.items():
            try:
                tables[name] = _open(con, name, path, problems)
            except duckdb.Error as e:
                problems.append(unreadable(path.name, e))
        for table in tables.values():
            try:
                _check_table(con, table, spec, problems)
            except duckdb.Error as e:
                problems.append(unreadable(table.file, e))
    return sorted(problems, key=lambda p: p.severity != "error")


def check_dataset(folder: str | Path, *, memory_limit: str = "2GB",
                  threads: int | None = None) -> list[Problem]:
    """:func:`validate_dataset`, raising DataValidationError when there is any error.

    Returns:
        The warnings (legal but suspicious findings).
    """
    problems = validate_dataset(folder, memory_limit=memory_limit, threads=threads)
    if any(p.severity == "error" for p in problems):
        raise DataValidationError(problems, context=str(folder))
    return problems


def _table_paths(folder: Path, problems: list[Problem]) -> dict[str, Path]:
    paths = {}
    for name in TABLES:
        found = [folder / f"{name}{ext}" for ext in (".parquet", ".csv")
                 if (folder / f"{name}{ext}").is_file()]
        if len(found) == 2:
            problems.append(Problem(found[1].name, None, None,
                                    f"one of {name}.parquet or {name}.csv",
                                    "both (the Parquet file is used)", "warning"))
        if found:
            paths[name] = found[0]
        elif name == "events":
            problems.append(Problem("events.parquet", None, None,
                                    "an events.parquet or events.csv file",
                                    f"neither in {folder.name or folder}"))
    return paths


def _open(con: duckdb.DuckDBPyConnection, name: str, path: Path,
          problems: list[Problem]) -> _Table:
    view = ident(f"v_{name}")
    if path.suffix == ".parquet":
        src = f"read_parquet({lit(str(path))}, file_row_number=true)"
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT * EXCLUDE (file_row_number), "
                    f"file_row_number AS {_ROW} FROM {src}")
        def to_row(keys: list[int]) -> dict[int, int]:
            return {k: k + 1 for k in keys}
    else:
        raw, rej = ident(f"raw_{name}"), f"rej_{name}"
        con.execute(f"CREATE TEMP TABLE {raw} AS SELECT * FROM read_csv({lit(str(path))}, "
                    f"{CSV_OPTIONS}, store_rejects=true, rejects_table={lit(rej)}, "
                    f"rejects_scan={lit(rej + '_scan')})")
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT *, rowid AS {_ROW} FROM {raw}")
        # DuckDB's own line numbers of rejected rows drift after blank lines and quoted line
        # breaks, so only their order is used: the j-th rejected row gets key -(j + 1).
        rejected = con.execute(
            f"SELECT error_type, min(j), count(*), arg_min(error_message, j), arg_min(line, j) "
            f"FROM (SELECT *, row_number() OVER (ORDER BY line, byte_position) - 1 AS j "
            f"FROM {rej}) GROUP BY error_type ORDER BY 2").fetchall()
        n_bad = sum(int(r[2]) for r in rejected)
        n = con.execute(f"SELECT count(*) FROM {raw}").fetchone()[0]
        n_cols = len(con.execute(f"DESCRIBE {raw}").fetchall())
        to_row = _csv_line_finder(path, int(n), n_cols, n_bad,
                                  {-(int(j) + 1): int(line) for _, j, _, _, line in rejected})
        firsts = to_row([-(int(j) + 1) for _, j, _, _, _ in rejected])
        for kind, j, count, message, _ in rejected:
            problems.append(Problem(path.name, firsts[-(int(j) + 1)], None,
                                    "a well-formed CSV row (one value per header column, UTF-8)",
                                    f"{kind.lower()}: {message}", "error", int(count)))
    types = {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()
             if r[0] != _ROW}
    return _Table(name, path.name, view, types, to_row)


def _csv_line_finder(path: Path, n_records: int, n_cols: int, n_bad: int,
                     bad_lines: dict[int, int]) -> Callable[[list[int]], dict[int, int]]:
    """Map keys of a CSV table to the line an editor shows.

    Key ``k >= 0`` is the 0-based record DuckDB kept; key ``-(j + 1)`` is the ``j``-th row DuckDB
    rejected (wrong number of values or invalid UTF-8). Lines come from one pass of Python's
    ``csv`` reader, which follows blank lines and quoted line breaks; without either (and no
    rejected rows) record ``k`` is simply on line ``k + 2``.
    """

    def find(keys: list[int]) -> dict[int, int]:
        if n_bad == 0 and _count_lines(path) == n_records + 1:
            return {k: k + 2 for k in keys}
        wanted, out, key, bad, prev_end, header = set(keys), {}, 0, 0, 0, False
        try:
            with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
                reader = csv.reader(f)
                for row in reader:
                    start, prev_end = prev_end + 1, reader.line_num
                    if not row:
                        continue
                    if not header:
                        header = True
                        continue
                    if len(row) != n_cols or any(_undecodable(v) for v in row):
                        bad += 1
                        this = -bad
                    else:
                        this, key = key, key + 1
                    if this in wanted:
                        out[this] = start
                        if len(out) == len(wanted):
                            break
        except csv.Error:
            pass  # fall back to the estimates below
        else:
            if len(out) < len(wanted) and bad != n_bad:
                out = {}  # the readers disagree on this file: estimates only
        return {k: out.get(k, bad_lines.get(k, k + 2)) for k in keys}

    return find


def _undecodable(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _count_lines(path: Path) -> int:
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def _checks(table: _Table, spec: DatasetSpec | None) -> list[_Check]:
    types = table.types
    checks: list[_Check] = []
    if "user_id" in types:
        checks.append(_Check("user_id", f"{text_sql('user_id')} IS NULL",
                             "a non-empty user id", found=_EMPTY))
    if "timestamp" in types and table.name != "users":
        ts, raw = timestamp_sql("timestamp", types["timestamp"]), text_sql("timestamp")
        checks += [
            _Check("timestamp", f"{raw} IS NULL", "a timestamp", found=_EMPTY),
            _Check("timestamp", f"{raw} IS NOT NULL AND ({ts} IS NULL OR {ts} < "
                   f"TIMESTAMPTZ {lit(TS_MIN)} OR {ts} >= TIMESTAMPTZ {lit(TS_MAX)})",
                   _TS_EXPECTED),
        ]
    if table.name == "events" and "event_type" in types:
        et, exact = text_sql("event_type"), 'CAST("event_type" AS VARCHAR)'
        counted = ", ".join(lit(t) for t in KNOWN_EVENT_TYPES + EXTRA_EVENT_TYPES)
        checks += [
            _Check("event_type", f"{et} IS NULL", "an event type", found=_EMPTY),
            _Check("event_type", f"{et} IS NOT NULL AND {exact} NOT IN ({counted})",
                   f"one of {', '.join(KNOWN_EVENT_TYPES + EXTRA_EVENT_TYPES)} "
                   "(other event types are ignored by the panel)", severity="warning"),
        ]
    if table.name == "events" and "revenue" in types:
        num, raw = number_sql("revenue", types["revenue"]), text_sql("revenue")
        checks += [
            _Check("revenue", f"{raw} IS NOT NULL AND ({num} IS NULL OR NOT isfinite({num}))",
                   "a finite number >= 0"),
            _Check("revenue", f"isfinite({num}) AND {num} < 0", "a number >= 0"),
        ]
        if spec is not None and spec.has_prices and "event_type" in types:
            checks.append(_Check("revenue", "CAST(\"event_type\" AS VARCHAR) = 'purchase' AND "
                                 f"{raw} IS NULL", "a revenue on every purchase "
                                 "(dataset.json has_prices is true)", found=_EMPTY))
    if table.name == "interventions" and "action" in types:
        act, exact = text_sql("action"), 'CAST("action" AS VARCHAR)'
        checks.append(_Check("action", f"{act} IS NULL", "an action name", found=_EMPTY))
        if spec is not None:
            names = ", ".join(lit(a) for a in spec.action_names) or "NULL"
            checks.append(_Check("action", f"{act} IS NOT NULL AND {exact} NOT IN ({names})",
                                 f"an action of the catalog {spec.action_names}"))
    if table.name == "interventions" and "propensity" in types:
        num, raw = number_sql("propensity", types["propensity"]), text_sql("propensity")
        checks += [
            _Check("propensity", f"{raw} IS NOT NULL AND ({num} IS NULL OR isnan({num}))",
                   "a probability in (0, 1]"),
            _Check("propensity", f"NOT isnan({num}) AND ({num} <= 0 OR {num} > 1)",
                   "a probability in (0, 1]"),
        ]
    return checks


def _check_table(con: duckdb.DuckDBPyConnection, table: _Table, spec: DatasetSpec | None,
                 problems: list[Problem]) -> None:
    missing = [c for c in REQUIRED[table.name] if c not in table.types]
    if table.name == "events" and spec is not None and spec.has_prices \
            and "revenue" not in table.types:
        missing.append("revenue")
    for col in missing:
        problems.append(Problem(table.file, None, col, f"a column '{col}'",
                                f"columns {list(table.types)}"))
    found: list[tuple[_Check | str, int, int, str]] = []  # (check, key, count, shown)
    checks = _checks(table, spec)
    if checks:
        parts = []
        for c in checks:
            shown = c.value or (f"CAST({ident(c.column)} AS VARCHAR)" if c.column else "NULL")
            parts += [f"count(*) FILTER (WHERE {c.condition})",
                      f"min({_ROW}) FILTER (WHERE {c.condition})",
                      f"arg_min({shown}, {_ROW}) FILTER (WHERE {c.condition})"]
        row = con.execute(f"SELECT {', '.join(parts)} FROM {table.view}").fetchone()
        for i, c in enumerate(checks):
            count, key, value = row[3 * i: 3 * i + 3]
            if count:
                shown = c.found or _distinct(con, table, c, value)
                found.append((c, int(key), int(count), shown))
    n_rows = con.execute(f"SELECT count(*) FROM {table.view}").fetchone()[0]
    if table.name == "events" and n_rows == 0 and not missing:
        problems.append(Problem(table.file, None, None, "at least one event", "no rows"))
    cols = [c for c in table.types if table.name != "users" or c == "user_id"]
    if cols and (table.name != "users" or "user_id" in table.types):
        keys = ", ".join(ident(c) for c in cols) if table.name != "users" \
            else text_sql("user_id")
        where = f"WHERE {text_sql('user_id')} IS NOT NULL" if table.name == "users" else ""
        dup = con.execute(
            f"SELECT sum(c - 1), min(k[2]), arg_min(k[1], k[2]) FROM (SELECT count(*) AS c, "
            f"min({_ROW}, 2) AS k FROM {table.view} {where} GROUP BY {keys} HAVING count(*) > 1)"
        ).fetchone()
        if dup[0]:
            found.append(("dup", int(dup[1]), int(dup[0]), str(int(dup[2]))))
    keys_needed = [k for _, k, _, _ in found] + [int(s) for c, _, _, s in found if c == "dup"]
    rows = table.to_row(keys_needed)
    for c, key, count, shown in found:
        if c == "dup":
            unique_ids = table.name == "users"
            problems.append(Problem(
                table.file, rows[key], "user_id" if unique_ids else None,
                "a unique user_id per user" if unique_ids else "no exact duplicate rows",
                f"a duplicate of row {rows[int(shown)]}", "error" if unique_ids else "warning",
                count))
        else:
            problems.append(Problem(table.file, rows[key], c.column, c.expected, shown,
                                    c.severity, count))


def _distinct(con: duckdb.DuckDBPyConnection, table: _Table, check: _Check,
              first: object) -> str:
    """The first offending value, plus the other distinct offending values when few."""
    if check.severity != "warning" and check.column != "action":
        return _show(first)
    vals = con.execute(
        f"SELECT CAST({ident(check.column)} AS VARCHAR) AS v FROM {table.view} "
        f"WHERE {check.condition} GROUP BY v ORDER BY min({_ROW}) LIMIT 6").fetchall()
    shown = ", ".join(_show(v[0]) for v in vals[:5])
    return shown + (", ..." if len(vals) > 5 else "")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
