"""Import the Hillstrom MineThatData e-mail experiment (2008) into the data contract.

64,000 customers were randomly assigned, one third each, to a men's e-mail, a women's e-mail or
no e-mail, and followed for two weeks. The file has no customer ids and no timestamps, so the
importer numbers the customers in file order (``user_id`` 1 to 64,000) and places the one
decision of each customer at a fixed campaign time, :data:`HILLSTROM_ORIGIN`.

Mapping:
    * action catalog ``none`` (cost 0), ``mens_email`` and ``womens_email`` (kind ``message``,
      channel ``email``, cost :data:`EMAIL_COST` per send);
    * one intervention per customer at the origin, ``propensity`` 1/3 (the design's uniform
      assignment), including ``none`` for the control arm;
    * period ``14D`` (the two-week follow-up), so every outcome falls in period 0;
    * ``visit`` = 1 gives a ``visit`` event, ``conversion`` = 1 a ``purchase`` with
      ``revenue`` = ``spend`` (USD); by default both sit at mid-period (the purchase sorted after
      the visit); with a ``seed`` the visit time is uniform over the period and the purchase
      uniform between the visit and the period end;
    * the pre-treatment columns go to the users table unchanged.
"""

from __future__ import annotations

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
    event_counts,
    finish_import,
    raise_problems,
    require_columns,
)

#: The campaign time assumed for every customer (the data carry none; the challenge was
#: published in March 2008). Period 0 of the dataset starts here.
HILLSTROM_ORIGIN = "2008-03-01T00:00:00+00:00"
#: Assumed cost of one marketing e-mail in USD (delivery plus a share of production); the
#: data carry no cost figure.
EMAIL_COST = 0.01
#: Arm names in the file -> action names of the catalog.
ARMS = {"No E-Mail": "none", "Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email"}
USER_FEATURES = ("recency", "history_segment", "history", "mens", "womens", "zip_code",
                 "newbie", "channel")
_NUMERIC = {"recency": "Int64", "history": "float64", "mens": "Int64", "womens": "Int64",
            "newbie": "Int64"}
_BINARY = ("mens", "womens", "newbie", "visit", "conversion")
_COLUMNS = (*USER_FEATURES, "segment", "visit", "conversion", "spend")
PERIOD = "14D"


def hillstrom_catalog(email_cost: float = EMAIL_COST) -> tuple[ActionSpec, ...]:
    """The three arms as an action catalog: ``none``, ``mens_email``, ``womens_email``."""
    return (
        ActionSpec("none", 0.0, "none"),
        ActionSpec("mens_email", email_cost, "message", channel="email"),
        ActionSpec("womens_email", email_cost, "message", channel="email"),
    )


def import_hillstrom(
    src: str | Path,
    out: str | Path,
    *,
    email_cost: float = EMAIL_COST,
    origin: str = HILLSTROM_ORIGIN,
    seed: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert ``hillstrom.csv`` into a dataset folder.

    Args:
        src: The Hillstrom CSV (64,000 rows + header).
        out: Dataset folder to write.
        email_cost: Cost per e-mail sent, USD.
        origin: Campaign time (ISO 8601; naive means UTC); the interventions' timestamp.
        seed: ``None`` puts outcomes at mid-period; an int draws their times (reproducibly).
        overwrite: Replace a dataset already in ``out``.

    Returns:
        ``out``.

    Raises:
        DataValidationError: A column is missing or a value is out of its domain (the error
            names the line and column).

    Example:
        >>> import_hillstrom("hillstrom.csv", "data/hillstrom")  # doctest: +SKIP
        PosixPath('data/hillstrom')
    """
    path = check_source(src)
    if not (email_cost >= 0):
        raise ConfigError(f"`email_cost` must be >= 0; got {email_cost!r}")
    try:
        t0 = pd.Timestamp(origin)
    except ValueError:
        raise ConfigError(f"`origin` must be an ISO 8601 time; got {origin!r}") from None
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")

    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    require_columns(raw, _COLUMNS, path.name)
    df = _parse(LineIndex(path, len(raw)), raw)
    n = len(df)

    user_id = np.arange(1, n + 1, dtype=np.int64)
    action = df["segment"].map(ARMS)
    interventions = pd.DataFrame({
        "user_id": user_id,
        "timestamp": pd.Series(t0, index=df.index),
        "action": action.astype(str),
        "propensity": np.full(n, 1.0 / len(ARMS)),
    })
    events = _events(df, user_id, t0, seed)
    users = pd.DataFrame({"user_id": user_id,
                          **{c: df[c].to_numpy() for c in USER_FEATURES}})

    arms = {}
    for seg, name in ARMS.items():
        sel = df["segment"] == seg
        arms[name] = {"segment": seg, "n": int(sel.sum()),
                      "visit_rate": float(df.loc[sel, "visit"].mean()),
                      "conversion_rate": float(df.loc[sel, "conversion"].mean()),
                      "spend_per_customer": float(df.loc[sel, "spend"].mean())}
    stats = ImportStats(
        rows_read=n, rows_kept=n, rows_dropped={},
        details={
            "events": event_counts(events),
            "n_users": n,
            "arms": arms,
            "conversions_without_visit": int(((df["conversion"] == 1) & (df["visit"] == 0)).sum()),
            "spend_without_conversion": int(((df["spend"] > 0) & (df["conversion"] == 0)).sum()),
            "email_cost_usd": email_cost,
            "propensity": "1/3 per arm (randomised design)",
            "user_id": "1-based row number in the source file",
            "event_times": ("mid-period (origin + 7 days)" if seed is None
                            else f"drawn uniformly within the period, seed {seed}"),
        },
    )
    spec = DatasetSpec(
        actions=hillstrom_catalog(email_cost),
        period=PERIOD,
        currency="USD",
        source="Kevin Hillstrom, MineThatData E-Mail Analytics and Data Mining Challenge (2008)",
        licence="released publicly for analysis without a formal licence; cite Hillstrom (2008)",
        origin=t0.isoformat(timespec="seconds"),
        has_prices=True,
        extra=base_extra("hillstrom", path, stats),
    )
    options = {"email_cost": email_cost, "origin": origin, "seed": seed, "overwrite": overwrite}
    return finish_import(out, overwrite, "hillstrom", path, options, spec, stats, events,
                         interventions, users)


def _parse(lines: LineIndex, raw: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of the raw string table; raise DataValidationError on any bad value."""
    df = raw[list(_COLUMNS)].copy()
    problems = []
    for col in (*_NUMERIC, "visit", "conversion", "spend"):
        num = pd.to_numeric(raw[col].str.strip(), errors="coerce")
        if col in _BINARY:
            bad = ~num.isin([0, 1])
            expected = "0 or 1"
        elif col == "recency":
            bad = ~num.between(1, 12) | (num % 1 != 0)
            expected = "an integer number of months 1-12"
        else:
            bad = ~(np.isfinite(num) & (num >= 0))
            expected = "a number >= 0"
        problems.append(bad_rows_problem(lines, bad, col, expected, raw[col]))
        df[col] = num
    for col in ("history_segment", "zip_code", "channel"):
        bad = raw[col].str.strip() == ""
        problems.append(bad_rows_problem(lines, bad, col, "a non-empty value", raw[col]))
    problems.append(bad_rows_problem(lines, ~raw["segment"].isin(list(ARMS)), "segment",
                                     f"one of {list(ARMS)}", raw["segment"]))
    raise_problems(problems)
    for col, dtype in _NUMERIC.items():
        df[col] = df[col].astype("float64" if dtype == "float64" else "int64")
    for col in ("visit", "conversion"):
        df[col] = df[col].astype("int64")
    df["spend"] = df["spend"].astype("float64")
    return df


def _events(df: pd.DataFrame, user_id: np.ndarray, t0: pd.Timestamp,
            seed: int | None) -> pd.DataFrame:
    """Visit and purchase events of the two-week follow-up."""
    secs = pd.Timedelta(PERIOD).total_seconds()
    n = len(df)
    if seed is None:
        visit_s = np.full(n, secs / 2)
        buy_s = visit_s
    else:
        rng = np.random.default_rng(seed)
        visit_s = np.floor(rng.uniform(0.0, secs, size=n))
        buy_s = np.floor(visit_s + rng.uniform(0.0, 1.0, size=n) * (secs - visit_s))
    visit_ts = t0 + pd.to_timedelta(visit_s, unit="s")
    buy_ts = t0 + pd.to_timedelta(buy_s, unit="s")
    visited = (df["visit"] == 1).to_numpy()
    bought = (df["conversion"] == 1).to_numpy()
    visits = pd.DataFrame({"user_id": user_id[visited], "timestamp": visit_ts[visited],
                           "event_type": "visit", "revenue": np.nan})
    buys = pd.DataFrame({"user_id": user_id[bought], "timestamp": buy_ts[bought],
                         "event_type": "purchase", "revenue": df["spend"].to_numpy()[bought]})
    return pd.concat([visits, buys], ignore_index=True)
