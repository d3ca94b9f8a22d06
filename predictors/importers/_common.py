"""Pieces every importer shares: row accounting, input checks, time zones and the output folder.

An importer reads one public file, checks it at the boundary (a malformed file raises
:class:`~predictors.errors.DataValidationError` naming file, line, column, expected and found),
keeps or drops each row for a named reason, and writes a dataset folder whose ``dataset.json``
carries the :class:`ImportStats` in ``extra``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from predictors.contract import DatasetSpec
from predictors.dataset import TABLES, write_dataset
from predictors.errors import ConfigError, DataValidationError, Problem
from predictors.io import write_json, write_run_config

#: Columns of the events table, in the order the importers write them.
EVENT_COLUMNS = ("user_id", "timestamp", "event_type", "item_id", "revenue")


@dataclass(frozen=True)
class ImportStats:
    """Row accounting of one import: every row read is either kept or dropped for a reason.

    Attributes:
        rows_read: Data rows read from the source file (header excluded).
        rows_kept: Rows that went into the dataset (possibly aggregated, e.g. invoice lines).
        rows_dropped: Dropped rows per reason; reasons that never fired are listed with 0.
        details: Importer-specific figures (events written per type, users, totals, notes).
    """

    rows_read: int
    rows_kept: int
    rows_dropped: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        counts = [self.rows_read, self.rows_kept, *self.rows_dropped.values()]
        if any(int(c) < 0 for c in counts):
            raise ValueError(f"row counts must be >= 0; got {self}")
        accounted = self.rows_kept + sum(self.rows_dropped.values())
        if accounted != self.rows_read:
            raise ValueError(
                f"rows read ({self.rows_read}) != kept ({self.rows_kept}) + dropped "
                f"({sum(self.rows_dropped.values())}): rows were lost"
            )

    @property
    def n_dropped(self) -> int:
        """Rows dropped for any reason."""
        return sum(self.rows_dropped.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (plain ints, reasons in the order they are checked)."""
        return {
            "rows_read": int(self.rows_read),
            "rows_kept": int(self.rows_kept),
            "rows_dropped": {k: int(v) for k, v in self.rows_dropped.items()},
            **self.details,
        }


def check_source(src: str | Path) -> Path:
    """Return ``src`` as a Path; raise FileNotFoundError when it is not a readable file."""
    path = Path(src)
    if not path.is_file():
        raise FileNotFoundError(f"source file not found: {path}")
    return path


def read_csv_text(path: Path) -> pd.DataFrame:
    """A CSV as text columns (empty cells as ''); unreadable files raise ConfigError naming it."""
    from pandas.errors import EmptyDataError, ParserError

    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False,
                           encoding="utf-8-sig").fillna("")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path.name}: expected a UTF-8 CSV file; found a byte that is not "
                          f"UTF-8 at byte {e.start}") from None
    except EmptyDataError:
        raise ConfigError(f"{path.name}: expected a CSV with a header line; the file is "
                          "empty") from None
    except ParserError as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"{path.name}: not a readable CSV ({first})") from None


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file's bytes (as stored, i.e. of the .gz for a gzip file)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def require_columns(df: pd.DataFrame, columns: Sequence[str], file: str) -> None:
    """Raise DataValidationError (line 1 = the header) when a needed column is missing."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataValidationError(
            Problem(file, 1, missing[0], f"a header with columns {list(columns)}",
                    f"columns {list(df.columns)}")
        )


def record_lines(path: Path, n_records: int) -> np.ndarray:
    """CSV line number (header = line 1) where each of ``n_records`` data records starts.

    When every record sits on one line this is ``2, 3, ...``; when quoted fields span lines,
    the line numbers are recovered with the :mod:`csv` module.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    n_newlines, last = 0, b"\n"
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n_newlines += block.count(b"\n")
            last = block[-1:]
    n_lines = n_newlines + (0 if last == b"\n" else 1)
    if n_lines == n_records + 1:
        return np.arange(2, n_records + 2, dtype=np.int64)
    with opener(path, "rb") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
        starts, prev = [], 0
        for _ in reader:  # header first, then one item per record
            starts.append(prev + 1)
            prev = reader.line_num
    return np.asarray(starts[1:n_records + 1], dtype=np.int64)


class LineIndex:
    """CSV line numbers of a file's records, computed on first use (it costs a pass over the file).

    Example:
        >>> lines = LineIndex(Path("orders.csv"), n_records=3)  # doctest: +SKIP
        >>> lines[0]  # doctest: +SKIP
        2
    """

    def __init__(self, path: Path, n_records: int) -> None:
        self.path, self.n_records = path, n_records
        self._lines: np.ndarray | None = None

    def __getitem__(self, record: int) -> int:
        if self._lines is None:
            self._lines = record_lines(self.path, self.n_records)
        return int(self._lines[record])


def bad_rows_problem(
    lines: LineIndex, bad: pd.Series | np.ndarray, column: str, expected: str,
    values: pd.Series,
) -> Problem | None:
    """One Problem for the rows flagged in ``bad`` (first one shown, all counted), or None."""
    mask = np.asarray(bad, dtype=bool)
    n = int(mask.sum())
    if n == 0:
        return None
    first = int(np.flatnonzero(mask)[0])
    value = values.iloc[first]
    found = "an empty value" if pd.isna(value) or str(value).strip() == "" else repr(str(value))
    return Problem(lines.path.name, lines[first], column, expected, found, count=n)


def raise_problems(problems: Sequence[Problem | None], context: str = "") -> None:
    """Raise DataValidationError listing the problems that are not None, if any."""
    found = [p for p in problems if p is not None]
    if found:
        raise DataValidationError(sorted(found, key=lambda p: p.row or 0), context)


def check_timezone(name: str) -> str:
    """Return ``name`` when it is an IANA time zone; raise ConfigError otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"`timezone` must be an IANA time zone such as 'UTC' or 'Europe/London'; got {name!r}"
        ) from None
    return name


def localize_to_utc(naive: pd.Series, tz: str) -> tuple[pd.Series, dict[str, int]]:
    """Read naive wall-clock times as local time of ``tz`` and convert them to UTC.

    A wall time repeated when clocks go back is read as the first (summer-time) instant; a
    wall time skipped when clocks go forward is moved forward by the gap. Both are counted.

    Returns:
        The UTC times, and ``{"ambiguous_local_times": n, "nonexistent_local_times": n}``.
    """
    check_timezone(tz)
    summer = np.ones(len(naive), dtype=bool)
    utc = naive.dt.tz_localize(tz, ambiguous=summer, nonexistent="shift_forward")
    counts = {"ambiguous_local_times": 0, "nonexistent_local_times": 0}
    if tz != "UTC":
        strict_amb = naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        strict_gap = naive.dt.tz_localize(tz, ambiguous=summer, nonexistent="NaT")
        counts["ambiguous_local_times"] = int((strict_amb.isna() & naive.notna()).sum())
        counts["nonexistent_local_times"] = int((strict_gap.isna() & naive.notna()).sum())
    return utc.dt.tz_convert("UTC"), counts


def iso_utc(ts: pd.Timestamp) -> str:
    """``ts`` (tz-aware) as an ISO 8601 string in UTC, seconds resolution."""
    return ts.tz_convert("UTC").isoformat(timespec="seconds")


def event_counts(events: pd.DataFrame) -> dict[str, int]:
    """Events written per ``event_type``, sorted by type."""
    counts = events["event_type"].value_counts().sort_index()
    return {str(k): int(v) for k, v in counts.items()}


def sort_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events in contract column order, sorted by user then time (stable), fresh index."""
    cols = [c for c in EVENT_COLUMNS if c in events.columns]
    out = events[cols].sort_values(["user_id", "timestamp"], kind="stable")
    return out.reset_index(drop=True)


def prepare_out(out: str | Path, overwrite: bool) -> Path:
    """Create ``out``; refuse to mix with an existing dataset unless ``overwrite``.

    With ``overwrite`` the contract files of the old dataset are removed first, so no stale
    table (say an interventions file from another source) survives next to the new ones.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out must be a folder; {out} is a file")
    old = [out / f"{t}{ext}" for t in TABLES for ext in (".parquet", ".csv")]
    old = [p for p in [*old, out / "dataset.json"] if p.is_file()]
    if old and not overwrite:
        raise ConfigError(
            f"{out} already holds a dataset ({old[0].name}); choose another folder or pass "
            "overwrite=True (--overwrite)"
        )
    for p in old:
        p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def finish_import(
    out: str | Path,
    overwrite: bool,
    kind: str,
    src: Path,
    options: dict[str, Any],
    spec: DatasetSpec,
    stats: ImportStats,
    events: pd.DataFrame,
    interventions: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
) -> Path:
    """Write the dataset, ``config.json`` and ``import.json`` (the statistics) into ``out``."""
    out = prepare_out(out, overwrite)
    write_dataset(out, spec, sort_events(events), interventions, users)
    write_run_config(out, f"import {kind}", {"src": str(src), **options})
    write_json(out / "import.json", {"kind": kind, "src": str(src), **stats.to_dict()})
    return out


def base_extra(kind: str, src: Path, stats: ImportStats) -> dict[str, Any]:
    """The ``extra`` block of ``dataset.json``: importer, source file, checksum, statistics."""
    return {"importer": kind, "source_file": src.name, "source_sha256": sha256_file(src),
            **stats.to_dict()}
