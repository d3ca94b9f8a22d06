"""Import any CSV of orders (one row per order) as purchase events.

The columns are named by the caller (:class:`TransactionsConfig`). Each row becomes a
``purchase`` event of ``user_col`` at ``time_col`` with ``revenue`` = ``amount_col`` (when
given; without it the dataset has no prices). Times are parsed as:

* ``iso``: ISO 8601; times with an offset (``Z``, ``+01:00``) are exact, naive ones are read as
  local time of ``timezone``;
* ``epoch`` / ``epoch_ms``: Unix seconds / milliseconds (UTC by definition; ``timezone`` is
  not used);
* any other value: a :func:`~datetime.datetime.strptime` pattern such as ``%d/%m/%Y %H:%M``;
  with ``%z`` the offset in the data is used, otherwise ``timezone``.

A bad row (empty user, unparseable time, missing, non-numeric, non-finite or negative amount)
raises :class:`~predictors.errors.DataValidationError` naming file, CSV line (header = line 1),
column, expected and found, one problem per kind with the count of rows sharing it; with
``drop_bad=True`` such rows are dropped and counted per reason instead. Users whose ids are all
integers (without leading zeros) get integer ``user_id``; otherwise ids stay strings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from predictors.contract import ActionSpec, DatasetSpec
from predictors.errors import ConfigError
from predictors.importers._common import (
    ImportStats,
    LineIndex,
    bad_rows_problem,
    base_extra,
    check_source,
    check_timezone,
    event_counts,
    finish_import,
    iso_utc,
    localize_to_utc,
    raise_problems,
    require_columns,
)

TIME_FORMATS = ("iso", "epoch", "epoch_ms")
#: A UTC offset after a clock time (so the day of a bare date is not read as an offset).
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
_INT_ID = r"^(?:0|-?[1-9]\d{0,17})$"


@dataclass(frozen=True)
class TransactionsConfig:
    """How to read an orders CSV.

    Attributes:
        user_col: Column holding the customer id.
        time_col: Column holding the order time.
        amount_col: Column holding the order value (>= 0); ``None`` = no prices.
        item_col: Optional column copied to ``item_id`` (as text).
        time_format: ``iso``, ``epoch``, ``epoch_ms`` or a strptime pattern (contains ``%``).
        timezone: IANA zone of naive times (ISO without offset, or a pattern without ``%z``).
        period: Decision period of the dataset (``<n>D``, ``<n>W`` or ``<n>H``).
        currency: Currency of ``amount_col``.
        drop_bad: Drop and count bad rows instead of raising.
    """

    user_col: str
    time_col: str
    amount_col: str | None = None
    item_col: str | None = None
    time_format: str = "iso"
    timezone: str = "UTC"
    period: str = "7D"
    currency: str = "USD"
    drop_bad: bool = False

    def __post_init__(self) -> None:
        named = {"user_col": self.user_col, "time_col": self.time_col,
                 "amount_col": self.amount_col, "item_col": self.item_col}
        for arg, col in named.items():
            if col is not None and (not isinstance(col, str) or not col.strip()):
                raise ConfigError(f"`{arg}` must be a non-empty column name; got {col!r}")
        used = [c for c in named.values() if c is not None]
        if len(set(used)) != len(used):
            raise ConfigError(f"the column options must name different columns; got {named}")
        if self.time_format not in TIME_FORMATS and "%" not in self.time_format:
            raise ConfigError(f"`time_format` must be one of {TIME_FORMATS} or a strptime "
                              f"pattern such as '%d/%m/%Y %H:%M'; got {self.time_format!r}")
        check_timezone(self.timezone)
        try:
            DatasetSpec(period=self.period)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if not self.currency or not self.currency.strip():
            raise ConfigError(f"`currency` must be a non-empty code such as 'EUR'; got "
                              f"{self.currency!r}")


def import_transactions(
    src: str | Path,
    out: str | Path,
    *,
    user_col: str,
    time_col: str,
    amount_col: str | None = None,
    item_col: str | None = None,
    time_format: str = "iso",
    timezone: str = "UTC",
    period: str = "7D",
    currency: str = "USD",
    drop_bad: bool = False,
    overwrite: bool = False,
) -> Path:
    """Convert an orders CSV into a dataset folder of purchase events.

    Args:
        src: The CSV (comma-separated, header on line 1; ``.gz`` is decompressed).
        out: Dataset folder to write.
        user_col: See :class:`TransactionsConfig` for this and the following options.
        time_col: Column holding the order time.
        amount_col: Column holding the order value; ``None`` = no prices.
        item_col: Optional column copied to ``item_id``.
        time_format: ``iso``, ``epoch``, ``epoch_ms`` or a strptime pattern.
        timezone: IANA zone of naive times.
        period: Decision period of the dataset.
        currency: Currency of the amounts.
        drop_bad: Drop and count bad rows instead of raising.
        overwrite: Replace a dataset already in ``out``.

    Returns:
        ``out``.

    Raises:
        ConfigError: An option is invalid.
        DataValidationError: A column is missing, or (without ``drop_bad``) a row is bad.

    Example:
        >>> import_transactions("orders.csv", "data/shop", user_col="customer",
        ...                     time_col="ordered_at", amount_col="total")  # doctest: +SKIP
        PosixPath('data/shop')
    """
    cfg = TransactionsConfig(user_col, time_col, amount_col, item_col, time_format, timezone,
                             period, currency, drop_bad)
    path = check_source(src)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False,
                      encoding="utf-8-sig").fillna("")
    needed = [c for c in (user_col, time_col, amount_col, item_col) if c is not None]
    require_columns(raw, needed, path.name)
    lines = LineIndex(path, len(raw))

    user = raw[user_col].str.strip()
    ts, tz_counts = parse_times(raw[time_col], cfg.time_format, cfg.timezone)
    checks = [("missing_user", (user == "").to_numpy(), user_col, "a non-empty user id"),
              ("bad_time", ts.isna().to_numpy(), time_col, _time_expected(cfg))]
    if amount_col is not None:
        amount = pd.to_numeric(raw[amount_col].str.strip(), errors="coerce")
        checks += [("bad_amount", (~np.isfinite(amount)).to_numpy(), amount_col,
                    "a number >= 0"),
                   ("negative_amount", (amount < 0).to_numpy(), amount_col, "a number >= 0")]
    bad_any = np.zeros(len(raw), dtype=bool)
    dropped = {}
    problems = []
    for reason, hit, col, expected in checks:
        new = hit & ~bad_any  # a row counts once, under its first reason
        bad_any |= hit
        dropped[reason] = int(new.sum())
        problems.append(bad_rows_problem(lines, new, col, expected, raw[col]))
    if not drop_bad:
        raise_problems(problems, context=f"bad rows in {path.name} (drop_bad=True, or "
                                         "--drop-bad, drops and counts them)")
    keep = ~bad_any

    events = pd.DataFrame({"user_id": _user_ids(user[keep]),
                           "timestamp": ts[keep].reset_index(drop=True),
                           "event_type": "purchase"})
    if item_col is not None:
        events["item_id"] = raw.loc[keep, item_col].str.strip().replace("", pd.NA).to_numpy()
    if amount_col is not None:
        events["revenue"] = amount[keep].astype("float64").to_numpy()
    stats = ImportStats(
        rows_read=len(raw), rows_kept=int(keep.sum()), rows_dropped=dropped,
        details={
            "events": event_counts(events),
            "n_users": int(events["user_id"].nunique()),
            "first_event": iso_utc(events["timestamp"].min()) if len(events) else None,
            "last_event": iso_utc(events["timestamp"].max()) if len(events) else None,
            "revenue_total": (round(float(events["revenue"].sum()), 2)
                              if amount_col is not None else None),
            "user_id_type": "int" if events["user_id"].dtype.kind == "i" else "str",
            **tz_counts,
            "columns": {"user_id": user_col, "timestamp": time_col, "revenue": amount_col,
                        "item_id": item_col},
        },
    )
    spec = DatasetSpec(
        actions=(ActionSpec("none", 0.0, "none"),),
        period=cfg.period,
        currency=cfg.currency,
        source=f"orders file {path.name}",
        licence="",
        origin=None,
        has_prices=amount_col is not None,
        extra=base_extra("transactions", path, stats),
    )
    options = {**asdict(cfg), "overwrite": overwrite}
    return finish_import(out, overwrite, "transactions", path, options, spec, stats, events)


def parse_times(text: pd.Series, time_format: str,
                timezone: str = "UTC") -> tuple[pd.Series, dict[str, int]]:
    """Parse order times to tz-aware UTC; unparseable values become NaT.

    Args:
        text: Time strings as read from the CSV.
        time_format: ``iso``, ``epoch``, ``epoch_ms`` or a strptime pattern.
        timezone: IANA zone of naive times.

    Returns:
        UTC times (NaT where unparseable) and the counts of ambiguous / nonexistent local times.

    Example:
        >>> ts, _ = parse_times(pd.Series(["2021-07-01 12:00", "2021-07-01T12:00Z", "x"]),
        ...                     "iso", "Europe/Paris")
        >>> ts.dt.strftime("%H:%M").tolist()
        ['10:00', '12:00', nan]
    """
    s = text.astype(str).str.strip()
    counts = {"ambiguous_local_times": 0, "nonexistent_local_times": 0}
    if time_format in ("epoch", "epoch_ms"):
        num = pd.to_numeric(s, errors="coerce")
        unit = "s" if time_format == "epoch" else "ms"
        return pd.to_datetime(num, unit=unit, utc=True, errors="coerce"), counts
    if time_format == "iso":
        aware = s.str.contains(_OFFSET, regex=True)
        out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
        if aware.any():
            out[aware] = pd.to_datetime(s[aware], format="ISO8601", utc=True, errors="coerce")
        naive = pd.to_datetime(s[~aware], format="ISO8601", errors="coerce")
    else:
        parsed = pd.to_datetime(s, format=time_format, errors="coerce",
                                utc="%z" in time_format)
        if "%z" in time_format:
            return parsed, counts
        out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
        aware = pd.Series(False, index=s.index)
        naive = parsed
    if len(naive):
        local, counts = localize_to_utc(naive, timezone)
        out[~aware] = local
    return out, counts


def _time_expected(cfg: TransactionsConfig) -> str:
    return {"iso": "an ISO 8601 time", "epoch": "Unix time in seconds",
            "epoch_ms": "Unix time in milliseconds"}.get(
                cfg.time_format, f"a time in the format {cfg.time_format!r}")


def _user_ids(user: pd.Series) -> pd.Series:
    """Integer ids when every id is a plain integer, else the strings."""
    user = user.reset_index(drop=True)
    if len(user) and user.str.match(_INT_ID).all():
        return user.astype("int64")
    return user.astype(str)
