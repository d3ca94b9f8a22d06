"""A CRM send log (one row per e-mail / push / coupon sent) as the interventions table.

Each row names a user, a send time and a campaign; a catalog file
(:mod:`predictors.importers.catalog`) says which catalog action each campaign is. Optional
columns: the cost of the send and the logging policy's propensity of it. Bad rows are reported
as in the orders importer: file, CSV line, column, expected, found, and the count of rows
sharing the problem.

Without a propensity column the propensities are estimated
(:func:`predictors.propensity.estimate_propensities`) and every user-period without a send
becomes an explicit ``none`` row at the period start with its estimated propensity, so that
off-policy evaluation sees every decision, not only the sends.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictors.contract import DatasetSpec
from predictors.errors import ConfigError
from predictors.importers._common import (
    LineIndex,
    bad_rows_problem,
    check_source,
    read_csv_text,
    require_columns,
)
from predictors.importers.catalog import CatalogFile


@dataclass(frozen=True)
class SendsConfig:
    """Columns of a send log.

    Attributes:
        user_col: Customer id column.
        time_col: Send time column (same format and zone as the orders).
        campaign_col: Campaign (or channel) column, mapped to actions by the catalog file.
        cost_col: Optional cost of each send.
        propensity_col: Optional logging propensity of each send, in (0, 1].
    """

    user_col: str
    time_col: str
    campaign_col: str
    cost_col: str | None = None
    propensity_col: str | None = None

    def __post_init__(self) -> None:
        named = {"--sends-user-col": self.user_col, "--sends-time-col": self.time_col,
                 "--sends-campaign-col": self.campaign_col, "--sends-cost-col": self.cost_col,
                 "--sends-propensity-col": self.propensity_col}
        for flag, col in named.items():
            if col is not None and (not isinstance(col, str) or not col.strip()):
                raise ConfigError(f"{flag} must be a non-empty column name; got {col!r}")
        used = [c for c in named.values() if c is not None]
        if len(set(used)) != len(used):
            raise ConfigError(f"the --sends-*-col options must name different columns; got "
                              f"{ {k: v for k, v in named.items() if v is not None} }")


@dataclass
class SendsTable:
    """Parsed send log before user ids are typed.

    Attributes:
        path: The CSV.
        raw: The file as text columns.
        user: Stripped user ids (text).
        ts: UTC send times (NaT where unparseable).
        action: Catalog action per row (missing where the campaign is unmapped).
        cost: Cost per row (NaN without a cost column).
        propensity: Propensity per row (NaN without a propensity column).
        lines: CSV line numbers of the rows.
    """

    path: Path
    raw: pd.DataFrame
    user: pd.Series
    ts: pd.Series
    action: pd.Series
    cost: pd.Series
    propensity: pd.Series
    lines: LineIndex


def read_sends(src: str | Path, cfg: SendsConfig, catalog: CatalogFile, parse_times,
               time_format: str, timezone: str) -> SendsTable:
    """Read the send log and map its campaigns to catalog actions (no row checks yet)."""
    path = check_source(src)
    raw = read_csv_text(path)
    needed = [c for c in (cfg.user_col, cfg.time_col, cfg.campaign_col, cfg.cost_col,
                          cfg.propensity_col) if c is not None]
    require_columns(raw, needed, path.name)
    ts, _ = parse_times(raw[cfg.time_col], time_format, timezone)
    action = raw[cfg.campaign_col].str.strip().map(catalog.campaign_map)

    def num(col: str | None) -> pd.Series:
        if col is None:
            return pd.Series(np.nan, index=raw.index)
        return pd.to_numeric(raw[col].str.strip(), errors="coerce")

    return SendsTable(path, raw, raw[cfg.user_col].str.strip(), ts, action,
                      num(cfg.cost_col), num(cfg.propensity_col), LineIndex(path, len(raw)))


def send_checks(s: SendsTable, cfg: SendsConfig, catalog: CatalogFile) -> list[tuple]:
    """``(reason, hit, column, expected)`` row checks of a send log, in the order applied."""
    known = sorted(catalog.campaign_map)
    shown = ", ".join(repr(c) for c in known[:8]) + (" ..." if len(known) > 8 else "")
    checks = [
        ("missing_user", (s.user == "").to_numpy(), cfg.user_col, "a non-empty user id"),
        ("bad_time", s.ts.isna().to_numpy(), cfg.time_col, "a valid send time"),
        ("unknown_campaign", s.action.isna().to_numpy(), cfg.campaign_col,
         f"a campaign listed in {catalog.path.name} ({shown})"),
    ]
    if cfg.cost_col is not None:
        checks.append(("bad_cost", (~(np.isfinite(s.cost) & (s.cost >= 0))).to_numpy(),
                       cfg.cost_col, "a cost >= 0"))
    if cfg.propensity_col is not None:
        p = s.propensity
        checks.append(("bad_propensity", (~((p > 0) & (p <= 1))).to_numpy(),
                       cfg.propensity_col, "a probability in (0, 1]"))
    return checks


def apply_checks(checks: list[tuple], raw: pd.DataFrame, lines: LineIndex,
                 n: int) -> tuple[np.ndarray, dict[str, int], list]:
    """Rows to drop, per-reason counts (a row counts under its first reason) and Problems."""
    bad_any = np.zeros(n, dtype=bool)
    dropped, problems = {}, []
    for reason, hit, col, expected in checks:
        new = hit & ~bad_any
        bad_any |= hit
        dropped[reason] = int(new.sum())
        problems.append(bad_rows_problem(lines, new, col, expected, raw[col]))
    return bad_any, dropped, problems


def mean_costs(s: SendsTable, keep: np.ndarray) -> dict[str, float]:
    """Mean send cost per action over the kept rows (empty without a cost column)."""
    cost = s.cost[keep]
    if cost.isna().all():
        return {}
    return {str(k): float(v) for k, v in cost.groupby(s.action[keep]).mean().items()}


def sends_config(sends, catalog, user_col, time_col, campaign_col, cost_col,
                 propensity_col) -> SendsConfig | None:
    """The :class:`SendsConfig` of the ``--sends*`` options, or None without a send log."""
    given = {"--sends-user-col": user_col, "--sends-time-col": time_col,
             "--sends-campaign-col": campaign_col, "--sends-cost-col": cost_col,
             "--sends-propensity-col": propensity_col}
    if sends is None:
        extra = [f for f, v in {**given, "--catalog": catalog}.items() if v is not None]
        if extra:
            raise ConfigError(f"{extra[0]} needs a send log (--sends FILE)")
        return None
    missing = [f for f in ("--sends-user-col", "--sends-time-col", "--sends-campaign-col")
               if given[f] is None]
    if catalog is None:
        missing.append("--catalog")
    if missing:
        raise ConfigError(f"--sends needs {' and '.join(missing)}")
    return SendsConfig(user_col, time_col, campaign_col, cost_col, propensity_col)


def sends_stats(sent: SendsTable, keep: np.ndarray, dropped: dict[str, int],
                interventions: pd.DataFrame) -> dict:
    """Row accounting of the send log for ``import.json``."""
    per_action = sent.action[keep].value_counts().sort_index()
    return {"file": sent.path.name, "rows_read": len(sent.raw), "rows_kept": int(keep.sum()),
            "rows_dropped": dropped,
            "sends_per_action": {str(k): int(v) for k, v in per_action.items()},
            "n_users": int(interventions["user_id"].nunique())}


def with_estimated_propensities(
    spec: DatasetSpec, events: pd.DataFrame, sends: pd.DataFrame, *, seed: int = 0,
    model: str = "boosting",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The interventions table with an explicit, estimated-propensity row per decision.

    Builds the panel of the dataset in a temporary folder, estimates the logging policy on it,
    and returns the sends (each with the estimated propensity of its action in its period)
    plus one ``none`` row at the start of every user-period without a send.

    Returns:
        The interventions frame and the calibration report.
    """
    from predictors.dataset import write_dataset
    from predictors.panel import build_panel
    from predictors.propensity import PropensityConfig, estimate_propensities

    with tempfile.TemporaryDirectory(prefix="nudgegym-propensity-") as tmp:
        write_dataset(tmp, spec, events, sends, validate=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            panel = build_panel(tmp, validate=False)
    est = estimate_propensities(panel, spec, PropensityConfig(model=model, seed=seed))
    origin = pd.Timestamp(spec.origin)
    period = pd.Timedelta(seconds=spec.period_seconds)
    key = pd.MultiIndex.from_arrays([panel["user_id"].to_numpy(), panel["period"].to_numpy()])
    row_of = pd.Series(np.arange(len(panel)), index=key)
    s_period = ((sends["timestamp"] - origin) // period).to_numpy(np.int64)
    s_row = row_of.reindex(pd.MultiIndex.from_arrays(
        [sends["user_id"].to_numpy(), s_period])).to_numpy()
    names = spec.action_names
    s_act = sends["action"].map({n: i for i, n in enumerate(names)}).to_numpy(np.int64)
    sent = sends.copy()
    ok = ~np.isnan(s_row)
    p = np.full(len(sends), np.nan)
    r = s_row[ok].astype(np.int64)
    p[ok] = np.maximum(est.action_dist[r, s_act[ok]], 1e-3)
    sent["propensity"] = p
    quiet = np.ones(len(panel), dtype=bool)
    quiet[r] = False
    none_rows = pd.DataFrame({
        "user_id": panel["user_id"].to_numpy()[quiet],
        "timestamp": origin + panel["period"].to_numpy()[quiet] * period,
        "action": "none",
        "propensity": est.pscore[quiet],
    })
    out = pd.concat([sent, none_rows], ignore_index=True)
    out = out.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    return out, est.calibration
