"""Import UCI Online Retail (order lines of a UK gift retailer, 2010-12 to 2011-12).

One invoice of an identified customer becomes one event: a ``purchase`` with ``revenue`` = the
sum of Quantity x UnitPrice over its product lines (GBP), or, for a cancellation (``C``
invoice), a ``return`` event with ``revenue`` = the absolute value of that sum. Returns are kept
rather than dropped because they are real customer outcomes (a refund undoes revenue); the
panel ignores event types it does not know, so they never count as purchases. Pass
``cancellations="drop"`` to drop them (counted) instead.

Every line read is either kept (aggregated into an event) or dropped for the first of these
reasons, checked in order; the counts land in ``dataset.json``'s ``extra``:

* ``missing_customer_id``: guest / unknown customers cannot be followed over time;
* ``adjustment_invoice``: ``A`` invoices (bad-debt adjustments), not orders;
* ``cancellation``: only with ``cancellations="drop"``;
* ``non_product_code``: postage, manual, discount, fees, gift vouchers... (StockCode not of
  the form five digits plus an optional letter suffix);
* ``non_positive_price``: UnitPrice <= 0 (free items, stock adjustments);
* ``quantity_sign_mismatch``: a sale line with Quantity <= 0 or a cancellation line with
  Quantity >= 0 (a stock adjustment, not an order).

``InvoiceDate`` is UK local time: it is read as Europe/London and converted to UTC. An invoice
whose lines carry different minutes takes the earliest. There are no interventions (the
catalog is just ``none``); the users table holds each customer's country (the most frequent
one on their lines when several appear).
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
    iso_utc,
    localize_to_utc,
    raise_problems,
    require_columns,
)

SOURCE_TIMEZONE = "Europe/London"
PERIOD = "7D"
CANCELLATIONS = ("return", "drop")
_COLUMNS = ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
            "Country")
_DTYPES = {"InvoiceNo": str, "StockCode": str, "Quantity": "int64", "InvoiceDate": str,
           "UnitPrice": "float64", "CustomerID": "float64", "Country": str}
_PRODUCT_CODE = r"^\d{5}[A-Za-z]*$"
_INVOICE = r"^[CA]?\d+$"


def import_online_retail(
    src: str | Path,
    out: str | Path,
    *,
    cancellations: str = "return",
    overwrite: bool = False,
) -> Path:
    """Convert ``online_retail.csv.gz`` (or the plain CSV) into a dataset folder.

    Args:
        src: The Online Retail CSV, optionally gzip-compressed.
        out: Dataset folder to write.
        cancellations: ``"return"`` (cancellations become ``return`` events) or ``"drop"``.
        overwrite: Replace a dataset already in ``out``.

    Returns:
        ``out``.

    Raises:
        DataValidationError: A column is missing or a value cannot be parsed (the error names
            the line and column).

    Example:
        >>> import_online_retail("online_retail.csv.gz", "data/retail")  # doctest: +SKIP
        PosixPath('data/retail')
    """
    path = check_source(src)
    if cancellations not in CANCELLATIONS:
        raise ConfigError(f"`cancellations` must be one of {CANCELLATIONS}; got {cancellations!r}")
    df = _read(path)
    lines = LineIndex(path, len(df))

    invoice = df["InvoiceNo"]
    is_cancel = invoice.str.startswith("C").to_numpy()
    reason = pd.Series("", index=df.index, dtype=object)
    rules = [
        ("missing_customer_id", df["CustomerID"].isna().to_numpy()),
        ("adjustment_invoice", ~invoice.str.match(r"^C?\d+$").to_numpy()),
        ("cancellation", is_cancel & (cancellations == "drop")),
        ("non_product_code", ~df["StockCode"].str.strip().str.match(_PRODUCT_CODE).to_numpy()),
        ("non_positive_price", (df["UnitPrice"] <= 0).to_numpy()),
        ("quantity_sign_mismatch", np.where(is_cancel, df["Quantity"] >= 0,
                                            df["Quantity"] <= 0)),
    ]
    dropped = {}
    for name, hit in rules:
        new = hit & (reason == "").to_numpy()
        reason[new] = name
        dropped[name] = int(new.sum())
    kept = df[(reason == "").to_numpy()]

    line_value = kept["Quantity"] * kept["UnitPrice"]
    inv = (kept.assign(value=line_value)
           .groupby("InvoiceNo", sort=False)
           .agg(user_id=("CustomerID", "first"), customers=("CustomerID", "nunique"),
                local_time=("InvoiceDate", "min"), times=("InvoiceDate", "nunique"),
                value=("value", "sum"))
           .reset_index())
    if (inv["customers"] > 1).any():
        bad = inv.loc[inv["customers"] > 1, "InvoiceNo"].iloc[0]
        raise_problems([bad_rows_problem(
            lines, (df["InvoiceNo"] == bad).to_numpy() & (reason == "").to_numpy(), "CustomerID",
            f"one CustomerID on all lines of invoice {bad}",
            df["CustomerID"].astype(str))])
    utc, tz_counts = localize_to_utc(inv["local_time"], SOURCE_TIMEZONE)
    events = pd.DataFrame({
        "user_id": inv["user_id"].astype("int64"),
        "timestamp": utc,
        "event_type": np.where(inv["InvoiceNo"].str.startswith("C"), "return", "purchase"),
        "revenue": inv["value"].abs().round(2),
    })
    users = _users(kept, events)

    first_local = inv["local_time"].min() if len(inv) else pd.Timestamp("1970-01-05")
    week_start = (first_local.normalize() - pd.Timedelta(days=first_local.day_of_week))
    origin, _ = localize_to_utc(pd.Series([week_start]), SOURCE_TIMEZONE)
    ids = df["CustomerID"].dropna()
    stats = ImportStats(
        rows_read=len(df), rows_kept=len(kept), rows_dropped=dropped,
        details={
            "events": event_counts(events),
            "n_users": int(events["user_id"].nunique()),
            "n_users_with_purchase": int(
                events.loc[events["event_type"] == "purchase", "user_id"].nunique()),
            "customers_read": int(ids.nunique()),
            "invoices_read": int(df["InvoiceNo"].nunique()),
            "line_value_read": round(float((df["Quantity"] * df["UnitPrice"]).sum()), 2),
            "purchase_revenue": round(float(
                events.loc[events["event_type"] == "purchase", "revenue"].sum()), 2),
            "return_revenue": round(float(
                events.loc[events["event_type"] == "return", "revenue"].sum()), 2),
            "invoices_with_several_times": int((inv["times"] > 1).sum()),
            "customers_with_several_countries": int(
                (kept.groupby("CustomerID")["Country"].nunique() > 1).sum()),
            "source_timezone": SOURCE_TIMEZONE,
            **tz_counts,
            "cancellations": cancellations,
            "event_unit": "one event per invoice; item_id omitted (an invoice has many items)",
        },
    )
    spec = DatasetSpec(
        actions=(ActionSpec("none", 0.0, "none"),),
        period=PERIOD,
        currency="GBP",
        source=("Online Retail, UCI Machine Learning Repository (Chen 2015), "
                "doi:10.24432/C5BW33; Chen, Sain, Guo (2012)"),
        licence="CC BY 4.0 (attribution required)",
        origin=iso_utc(origin.iloc[0]),
        has_prices=True,
        extra=base_extra("online-retail", path, stats),
    )
    options = {"cancellations": cancellations, "overwrite": overwrite}
    return finish_import(out, overwrite, "online-retail", path, options, spec, stats, events,
                         None, users)


def _read(path: Path) -> pd.DataFrame:
    """The typed table; a file that does not parse cleanly is re-read as text to name the line.

    The typed read is the fast path (the real file parses cleanly); the text read checks
    every value and raises DataValidationError at the first bad line of each column.
    """
    try:
        df = pd.read_csv(path, dtype=_DTYPES, usecols=list(_DTYPES), keep_default_na=False,
                         na_values={"CustomerID": [""]}, encoding="utf-8-sig")
    except ValueError:  # a missing column or a value of the wrong type
        df = None
    if df is not None:
        when = pd.to_datetime(df["InvoiceDate"].str.strip(), format="ISO8601", errors="coerce")
        cust = df["CustomerID"]
        clean = (when.notna().all() and df["InvoiceNo"].str.strip().str.match(_INVOICE).all()
                 and np.isfinite(df["UnitPrice"]).all()
                 and (cust.isna() | (cust % 1 == 0)).all())
        if clean:
            df["InvoiceNo"] = df["InvoiceNo"].str.strip()
            df["InvoiceDate"] = when
            return df
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    require_columns(raw, _COLUMNS, path.name)
    return _parse(LineIndex(path, len(raw)), raw)


def _parse(lines: LineIndex, raw: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of the raw string table; raise DataValidationError on unparseable values."""
    df = pd.DataFrame({"InvoiceNo": raw["InvoiceNo"].str.strip(),
                       "StockCode": raw["StockCode"], "Country": raw["Country"]})
    qty = pd.to_numeric(raw["Quantity"].str.strip(), errors="coerce")
    price = pd.to_numeric(raw["UnitPrice"].str.strip(), errors="coerce")
    when = pd.to_datetime(raw["InvoiceDate"].str.strip(), format="ISO8601", errors="coerce")
    cust_raw = raw["CustomerID"].str.strip()
    cust = pd.to_numeric(cust_raw, errors="coerce")
    problems = [
        bad_rows_problem(lines, ~df["InvoiceNo"].str.match(_INVOICE), "InvoiceNo",
                         "an invoice number (digits, optionally after C or A)",
                         raw["InvoiceNo"]),
        bad_rows_problem(lines, qty.isna() | (qty % 1 != 0), "Quantity", "an integer",
                         raw["Quantity"]),
        bad_rows_problem(lines, ~np.isfinite(price), "UnitPrice", "a number",
                         raw["UnitPrice"]),
        bad_rows_problem(lines, when.isna(), "InvoiceDate", "a time 'YYYY-MM-DD HH:MM[:SS]'",
                         raw["InvoiceDate"]),
        bad_rows_problem(lines, (cust_raw != "") & (cust.isna() | (cust % 1 != 0)),
                         "CustomerID", "an integer customer id or an empty value",
                         raw["CustomerID"]),
    ]
    raise_problems(problems)
    df["Quantity"] = qty.astype("int64")
    df["UnitPrice"] = price.astype("float64")
    df["InvoiceDate"] = when
    df["CustomerID"] = cust
    return df


def _users(kept: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """One row per user with events: ``user_id`` and the most frequent ``country``."""
    counts = (kept.groupby(["CustomerID", "Country"]).size().rename("n").reset_index()
              .sort_values(["CustomerID", "n", "Country"], ascending=[True, False, True],
                           kind="stable"))
    first = counts.drop_duplicates("CustomerID")
    users = pd.DataFrame({"user_id": first["CustomerID"].astype("int64").to_numpy(),
                          "country": first["Country"].to_numpy()})
    return users[users["user_id"].isin(events["user_id"])].reset_index(drop=True)
