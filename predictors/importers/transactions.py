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

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from predictors.contract import ActionSpec, DatasetSpec
from predictors.errors import ConfigError
from predictors.importers._common import (
    ImportStats,
    LineIndex,
    base_extra,
    check_source,
    check_timezone,
    event_counts,
    finish_import,
    iso_utc,
    localize_to_utc,
    raise_problems,
    read_csv_text,
    require_columns,
)
from predictors.tables import utc_timestamp

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
        origin: Start of period 0 (ISO 8601; naive = ``timezone``); ``None`` = the first
            order's or send's UTC day.
        observed_until: End of observation (exclusive, ISO 8601): periods up to it count as
            exposure even without an order; ``None`` = the period of the last order or send.
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
    origin: str | None = None
    observed_until: str | None = None

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
        bounds = [parse_bound(v, self.timezone, flag)
                  for v, flag in ((self.origin, "--origin"),
                                  (self.observed_until, "--observed-until"))]
        if None not in bounds and bounds[1] <= bounds[0]:
            raise ConfigError(f"--observed-until ({self.observed_until}) must be after "
                              f"--origin ({self.origin})")
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
    origin: str | None = None,
    observed_until: str | None = None,
    sends: str | Path | None = None,
    sends_user_col: str | None = None,
    sends_time_col: str | None = None,
    sends_campaign_col: str | None = None,
    sends_cost_col: str | None = None,
    sends_propensity_col: str | None = None,
    catalog: str | Path | None = None,
    propensity_model: str = "boosting",
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Convert an orders CSV (and optionally a CRM send log) into a dataset folder.

    Args:
        src: The orders CSV (comma-separated, header on line 1; ``.gz`` is decompressed).
        out: Dataset folder to write.
        user_col: See :class:`TransactionsConfig` for this and the following options.
        time_col: Column holding the order time.
        amount_col: Column holding the order value; ``None`` = no prices.
        item_col: Optional column copied to ``item_id``.
        time_format: ``iso``, ``epoch``, ``epoch_ms`` or a strptime pattern (orders and sends).
        timezone: IANA zone of naive times.
        period: Decision period of the dataset.
        currency: Currency of the amounts.
        drop_bad: Drop and count bad rows instead of raising.
        origin: Start of period 0; ``None`` = the first order's or send's UTC day.
        observed_until: End of observation (exclusive); ``None`` = the last event's period.
        sends: The send log CSV (one row per message sent); needs ``catalog``.
        sends_user_col, sends_time_col, sends_campaign_col: Its user, time, campaign columns.
        sends_cost_col: Optional cost per send (fills catalog actions without a ``cost``).
        sends_propensity_col: Optional logging propensity per send; without it the
            propensities are estimated (:mod:`predictors.propensity`) and flagged in
            ``dataset.json`` (``extra.propensity.source = "estimated"``).
        catalog: Catalog file mapping campaigns to actions (:mod:`.catalog`).
        propensity_model: ``boosting`` or ``logistic`` (estimated propensities only).
        seed: Seed of the propensity estimate's folds.
        overwrite: Replace a dataset already in ``out``.

    Returns:
        ``out``.

    Raises:
        ConfigError: An option or the catalog file is invalid.
        DataValidationError: A column is missing, or (without ``drop_bad``) a row is bad.

    Example:
        >>> import_transactions("orders.csv", "data/shop", user_col="customer",
        ...                     time_col="ordered_at", amount_col="total")  # doctest: +SKIP
        PosixPath('data/shop')
    """
    from predictors.importers.catalog import read_catalog, resolve_costs
    from predictors.importers.sends import (
        apply_checks,
        mean_costs,
        read_sends,
        send_checks,
        sends_config,
        sends_stats,
        with_estimated_propensities,
    )

    cfg = TransactionsConfig(user_col, time_col, amount_col, item_col, time_format, timezone,
                             period, currency, drop_bad, origin, observed_until)
    scfg = sends_config(sends, catalog, sends_user_col, sends_time_col, sends_campaign_col,
                        sends_cost_col, sends_propensity_col)
    from predictors.propensity import MODELS

    if propensity_model not in MODELS:
        raise ConfigError(f"--propensity-model must be one of {', '.join(MODELS)}; got "
                          f"{propensity_model!r}")
    path = check_source(src)
    cat = read_catalog(catalog) if catalog is not None else None
    raw = read_csv_text(path)
    needed = [c for c in (user_col, time_col, amount_col, item_col) if c is not None]
    require_columns(raw, needed, path.name)
    lines = LineIndex(path, len(raw))
    sent = read_sends(sends, scfg, cat, parse_times, time_format, timezone) if scfg else None

    user = raw[user_col].str.strip()
    ts, tz_counts = parse_times(raw[time_col], cfg.time_format, cfg.timezone)
    checks = [("missing_user", (user == "").to_numpy(), user_col, "a non-empty user id"),
              ("bad_time", ts.isna().to_numpy(), time_col, _time_expected(cfg))]
    if amount_col is not None:
        amount = pd.to_numeric(raw[amount_col].str.strip(), errors="coerce")
        checks += [("bad_amount", (~np.isfinite(amount)).to_numpy(), amount_col,
                    "a number >= 0"),
                   ("negative_amount", (amount < 0).to_numpy(), amount_col, "a number >= 0")]
    s_checks = send_checks(sent, scfg, cat) if sent is not None else []
    lo = parse_bound(cfg.origin, cfg.timezone, "--origin")
    hi = parse_bound(cfg.observed_until, cfg.timezone, "--observed-until")
    for times, col, chk in ((ts, time_col, checks),
                            *(((sent.ts, scfg.time_col, s_checks),) if sent is not None else ())):
        if lo is not None:
            chk.append(("before_origin", (times < lo).to_numpy(), col,
                        f"a time at or after --origin {iso_utc(lo)}"))
        if hi is not None:
            chk.append(("after_observed_until", (times >= hi).to_numpy(), col,
                        f"a time before --observed-until {iso_utc(hi)}"))
    bad_any, dropped, problems = apply_checks(checks, raw, lines, len(raw))
    if sent is not None:
        s_bad, s_dropped, s_problems = apply_checks(s_checks, sent.raw, sent.lines, len(sent.raw))
        problems += s_problems
    if not drop_bad:
        files = path.name + (f" / {sent.path.name}" if sent is not None else "")
        raise_problems(problems, context=f"bad rows in {files} (drop_bad=True, or "
                                         "--drop-bad, drops and counts them)")
    keep = ~bad_any
    s_keep = ~s_bad if sent is not None else None
    uid = _user_ids(pd.concat([user[keep], sent.user[s_keep]] if sent is not None
                              else [user[keep]], ignore_index=True))
    n_ev = int(keep.sum())
    events = pd.DataFrame({"user_id": uid.iloc[:n_ev].reset_index(drop=True),
                           "timestamp": ts[keep].reset_index(drop=True),
                           "event_type": "purchase"})
    if item_col is not None:
        events["item_id"] = raw.loc[keep, item_col].str.strip().replace("", pd.NA).to_numpy()
    if amount_col is not None:
        events["revenue"] = amount[keep].astype("float64").to_numpy()
    interventions = None
    if sent is not None:
        interventions = pd.DataFrame({
            "user_id": uid.iloc[n_ev:].reset_index(drop=True),
            "timestamp": sent.ts[s_keep].reset_index(drop=True),
            "action": sent.action[s_keep].astype(str).reset_index(drop=True)})
        if scfg.propensity_col is not None:
            interventions["propensity"] = sent.propensity[s_keep].to_numpy(dtype="float64")
    all_ts = pd.concat([events["timestamp"]] + ([interventions["timestamp"]]
                                                 if interventions is not None else []))
    if lo is None:
        lo = all_ts.min().floor("D") if len(all_ts) else None
    actions = (resolve_costs(cat, mean_costs(sent, s_keep)) if cat is not None
               else (ActionSpec("none", 0.0, "none"),))
    stats = ImportStats(
        rows_read=len(raw), rows_kept=int(keep.sum()), rows_dropped=dropped,
        details={
            "events": event_counts(events),
            "n_users": int(pd.concat([events["user_id"], interventions["user_id"]]
                                     if interventions is not None
                                     else [events["user_id"]]).nunique()),
            "first_event": iso_utc(events["timestamp"].min()) if len(events) else None,
            "last_event": iso_utc(events["timestamp"].max()) if len(events) else None,
            "origin": iso_utc(lo) if lo is not None else None,
            "origin_from": "--origin" if cfg.origin else "first event's day",
            "observed_until": iso_utc(hi) if hi is not None else None,
            "observed_until_from": ("--observed-until" if hi is not None
                                    else "last event's period"),
            "revenue_total": (round(float(events["revenue"].sum()), 2)
                              if amount_col is not None else None),
            "user_id_type": "int" if events["user_id"].dtype.kind == "i" else "str",
            **tz_counts,
            "columns": {"user_id": user_col, "timestamp": time_col, "revenue": amount_col,
                        "item_id": item_col},
            **({"sends": sends_stats(sent, s_keep, s_dropped, interventions)}
               if sent is not None else {}),
        },
    )
    spec = DatasetSpec(
        actions=actions,
        period=cfg.period,
        currency=cfg.currency,
        source=f"orders file {path.name}" + (f", sends file {sent.path.name}"
                                             if sent is not None else ""),
        licence="",
        origin=iso_utc(lo) if lo is not None else None,
        observed_until=iso_utc(hi) if hi is not None else None,
        has_prices=amount_col is not None,
        extra=base_extra("transactions", path, stats),
    )
    if interventions is not None:
        if scfg.propensity_col is None:
            interventions, calib = with_estimated_propensities(
                spec, events, interventions, seed=seed, model=propensity_model)
            from predictors.propensity import ASSUMPTION

            prop = {"source": "estimated", **calib, "warning": ASSUMPTION}
        else:
            prop = {"source": "logged", "column": scfg.propensity_col}
        spec = replace(spec, extra={**spec.extra, "propensity": prop})
    options = {**asdict(cfg), "sends": None if sends is None else str(sends),
               **({} if scfg is None else {f"sends_{k}": v for k, v in asdict(scfg).items()}),
               "catalog": None if catalog is None else str(catalog),
               "propensity_model": propensity_model, "seed": seed, "overwrite": overwrite}
    return finish_import(out, overwrite, "transactions", path, options, spec, stats, events,
                         interventions)


def parse_bound(value: str | None, timezone: str, flag: str) -> pd.Timestamp | None:
    """``--origin`` / ``--observed-until`` as a UTC timestamp (naive = ``timezone``)."""
    if value is None:
        return None
    ts = utc_timestamp(value, check_timezone(timezone))
    if ts is None:
        raise ConfigError(f"{flag} must be an ISO 8601 time such as 2024-01-01 or "
                          f"2024-01-01T00:00:00Z; got {value!r}")
    return ts


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
