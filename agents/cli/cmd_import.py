"""``nudgegym import KIND SRC --out DIR``: public data into the data contract.

Writes the dataset folder ``DIR`` (``dataset.json`` whose ``extra`` holds the import statistics,
Parquet tables), ``DIR/config.json`` and ``DIR/import.json`` (the statistics), then prints the
row accounting: rows read, kept, and dropped per reason.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from agents.cli._app import app, output_folder, source_errors
from predictors.errors import ConfigError
from predictors.importers import IMPORTERS


class ImportKind(str, Enum):
    """Sources ``nudgegym import`` understands."""

    hillstrom = "hillstrom"
    online_retail = "online-retail"
    taobao = "taobao"
    transactions = "transactions"


#: Options that only some kinds accept: CLI flag -> (kinds, keyword of the importer).
_KIND_OPTIONS = {
    "--email-cost": ("hillstrom", "email_cost"),
    "--origin": (("hillstrom", "transactions"), "origin"),
    "--observed-until": ("transactions", "observed_until"),
    "--sends": ("transactions", "sends"),
    "--sends-user-col": ("transactions", "sends_user_col"),
    "--sends-time-col": ("transactions", "sends_time_col"),
    "--sends-campaign-col": ("transactions", "sends_campaign_col"),
    "--sends-cost-col": ("transactions", "sends_cost_col"),
    "--sends-propensity-col": ("transactions", "sends_propensity_col"),
    "--catalog": ("transactions", "catalog"),
    "--propensity-model": ("transactions", "propensity_model"),
    "--seed": (("hillstrom", "transactions"), "seed"),
    "--cancellations": ("online-retail", "cancellations"),
    "--sessions/--no-sessions": ("taobao", "sessions"),
    "--session-gap": ("taobao", "session_gap_minutes"),
    "--user-col": ("transactions", "user_col"),
    "--time-col": ("transactions", "time_col"),
    "--amount-col": ("transactions", "amount_col"),
    "--item-col": ("transactions", "item_col"),
    "--time-format": ("transactions", "time_format"),
    "--timezone": ("transactions", "timezone"),
    "--period": ("transactions", "period"),
    "--currency": ("transactions", "currency"),
    "--drop-bad": ("transactions", "drop_bad"),
}


@app.command("import")
def import_command(
    kind: Annotated[ImportKind, typer.Argument(help="Source kind.")],
    src: Annotated[Path, typer.Argument(help="Source file (CSV; .csv.gz is decompressed).")],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write.")],
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a dataset already in --out.")] = False,
    email_cost: Annotated[Optional[float], typer.Option(
        "--email-cost", help="[hillstrom] Cost per e-mail, USD (default 0.01).")] = None,
    origin: Annotated[Optional[str], typer.Option(
        "--origin", help="[hillstrom] Campaign time, ISO 8601 (default 2008-03-01 UTC). "
        "[transactions] Start of period 0 (default: the first order's or send's day).")] = None,
    observed_until: Annotated[Optional[str], typer.Option(
        "--observed-until", help="[transactions] End of observation, exclusive, ISO 8601 "
        "(default: the last event's period); quiet last weeks still count as exposure.")] = None,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", help="[hillstrom] Draw event times in the period with this seed "
        "(default: mid-period). [transactions] Seed of the propensity estimate.")] = None,
    cancellations: Annotated[Optional[str], typer.Option(
        "--cancellations", help="[online-retail] 'return' (default) or 'drop'.")] = None,
    sessions: Annotated[Optional[bool], typer.Option(
        "--sessions/--no-sessions", help="[taobao] Derive visit events at session starts "
        "(default on).")] = None,
    session_gap: Annotated[Optional[float], typer.Option(
        "--session-gap", help="[taobao] Inactivity in minutes that ends a session "
        "(default 30).")] = None,
    user_col: Annotated[Optional[str], typer.Option(
        "--user-col", help="[transactions] Customer id column.")] = None,
    time_col: Annotated[Optional[str], typer.Option(
        "--time-col", help="[transactions] Order time column.")] = None,
    amount_col: Annotated[Optional[str], typer.Option(
        "--amount-col", help="[transactions] Order value column (omit: no prices).")] = None,
    item_col: Annotated[Optional[str], typer.Option(
        "--item-col", help="[transactions] Column copied to item_id.")] = None,
    time_format: Annotated[Optional[str], typer.Option(
        "--time-format", help="[transactions] iso (default), epoch, epoch_ms or a strptime "
        "pattern.")] = None,
    timezone: Annotated[Optional[str], typer.Option(
        "--timezone", help="[transactions] IANA zone of naive times (default UTC).")] = None,
    period: Annotated[Optional[str], typer.Option(
        "--period", help="[transactions] Decision period (default 7D).")] = None,
    currency: Annotated[Optional[str], typer.Option(
        "--currency", help="[transactions] Currency (default USD).")] = None,
    drop_bad: Annotated[Optional[bool], typer.Option(
        "--drop-bad", help="[transactions] Drop and count bad rows instead of failing.")] = None,
    sends: Annotated[Optional[Path], typer.Option(
        "--sends", help="[transactions] CRM send log CSV (one row per e-mail/push/coupon "
        "sent); needs --catalog and the --sends-*-col options.")] = None,
    sends_user_col: Annotated[Optional[str], typer.Option(
        "--sends-user-col", help="[transactions] Customer id column of the sends.")] = None,
    sends_time_col: Annotated[Optional[str], typer.Option(
        "--sends-time-col", help="[transactions] Send time column.")] = None,
    sends_campaign_col: Annotated[Optional[str], typer.Option(
        "--sends-campaign-col", help="[transactions] Campaign (or channel) column, mapped to "
        "actions by --catalog.")] = None,
    sends_cost_col: Annotated[Optional[str], typer.Option(
        "--sends-cost-col", help="[transactions] Cost per send column (optional).")] = None,
    sends_propensity_col: Annotated[Optional[str], typer.Option(
        "--sends-propensity-col", help="[transactions] Logging propensity column (optional; "
        "without it propensities are estimated and flagged).")] = None,
    catalog: Annotated[Optional[Path], typer.Option(
        "--catalog", help="[transactions] Catalog YAML: per action name, kind, channel, cost, "
        "discount_rate, campaigns.")] = None,
    propensity_model: Annotated[Optional[str], typer.Option(
        "--propensity-model", help="[transactions] boosting (default) or logistic, for "
        "estimated propensities.")] = None,
) -> None:
    """Convert a public data set or an orders CSV into a dataset folder."""
    given = {"--email-cost": email_cost, "--origin": origin, "--seed": seed,
             "--observed-until": observed_until, "--sends": sends,
             "--sends-user-col": sends_user_col, "--sends-time-col": sends_time_col,
             "--sends-campaign-col": sends_campaign_col, "--sends-cost-col": sends_cost_col,
             "--sends-propensity-col": sends_propensity_col, "--catalog": catalog,
             "--propensity-model": propensity_model,
             "--cancellations": cancellations, "--sessions/--no-sessions": sessions,
             "--session-gap": session_gap, "--user-col": user_col, "--time-col": time_col,
             "--amount-col": amount_col, "--item-col": item_col, "--time-format": time_format,
             "--timezone": timezone, "--period": period, "--currency": currency,
             "--drop-bad": drop_bad}
    options = kind_options(kind.value, given)
    if not src.is_file():
        raise FileNotFoundError(f"SRC {src}: no such file; expected the {kind.value} CSV")
    with output_folder(out, replace=overwrite) as tmp, source_errors(src, "SRC"):
        result = IMPORTERS[kind.value](src, tmp, overwrite=True, **options)
        stats = json.loads((Path(result) / "import.json").read_text())
        prop = json.loads((Path(result) / "dataset.json").read_text())["extra"].get("propensity")
    typer.echo(format_stats(stats, out))
    if prop and prop.get("source") == "estimated":
        typer.echo(f"  propensities estimated ({prop['model']}, {prop['n_folds']}-fold "
                   f"cross-fitted by user): log loss {prop['log_loss']:.3f} vs "
                   f"{prop['log_loss_marginal']:.3f} for the action shares alone, "
                   f"calibration error {prop['ece']:.3f}")
        typer.echo(f"  warning: {prop['warning']}", err=True)


def kind_options(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """Importer keywords of ``kind`` from the flags given; reject flags of other kinds."""
    options = {}
    for flag, value in given.items():
        if value is None:
            continue
        owners, keyword = _KIND_OPTIONS[flag]
        owners = (owners,) if isinstance(owners, str) else owners
        if kind not in owners:
            raise ConfigError(f"{flag} applies to `nudgegym import "
                              f"{' / '.join(owners)}` only; got it with kind {kind!r}")
        options[keyword] = value
    if kind == "transactions":
        missing = [f for f in ("--user-col", "--time-col") if given.get(f) is None]
        if missing:
            raise ConfigError(f"`nudgegym import transactions` needs {' and '.join(missing)}")
    return options


def format_stats(stats: dict[str, Any], out: Path) -> str:
    """Readable row accounting and event counts of an import."""
    dropped = stats["rows_dropped"]
    lines = [f"imported {stats['kind']}: {stats['src']} -> {out}",
             f"  {'rows read':<32}{stats['rows_read']:>10,}",
             f"  {'rows kept':<32}{stats['rows_kept']:>10,}",
             f"  {'rows dropped':<32}{sum(dropped.values()):>10,}"]
    lines += [f"    {reason:<30}{n:>10,}" for reason, n in dropped.items()]
    events = stats.get("events", {})
    lines.append(f"  {'events':<34}" + ", ".join(f"{k} {v:,}" for k, v in events.items()))
    sends = stats.get("sends")
    if sends:
        lines += [f"  sends {sends['file']}: rows read {sends['rows_read']:,}, kept "
                  f"{sends['rows_kept']:,}, dropped {sum(sends['rows_dropped'].values()):,}"]
        lines += [f"    {reason:<30}{n:>10,}" for reason, n in sends["rows_dropped"].items()]
        lines.append(f"  {'sends per action':<34}" + ", ".join(
            f"{k} {v:,}" for k, v in sends["sends_per_action"].items()))
    for name, arm in stats.get("arms", {}).items():
        lines.append(f"  arm {name:<14} n {arm['n']:>7,}   visit {arm['visit_rate']:6.2%}   "
                     f"conversion {arm['conversion_rate']:6.2%}   "
                     f"spend/customer {arm['spend_per_customer']:.2f}")
    skip = {"kind", "src", "rows_read", "rows_kept", "rows_dropped", "events"}
    for key, value in stats.items():
        if key not in skip and isinstance(value, (int, float, str)) and value is not None:
            shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) \
                else str(value)
            lines.append(f"  {key:<34}{shown}")
    return "\n".join(lines)
