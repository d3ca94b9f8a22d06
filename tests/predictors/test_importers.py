"""Importers: real public files (skipped when absent) against their published figures, plus
small synthetic files for every drop reason, time zone rule and bad-input message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import shared_file  # noqa: E402

from agents.cli._app import run_main
from predictors.contract import read_spec
from predictors.errors import ConfigError, DataValidationError
from predictors.importers import (
    ImportStats,
    TransactionsConfig,
    derive_visits,
    import_hillstrom,
    import_online_retail,
    import_taobao,
    import_transactions,
)
from predictors.validate import validate_dataset


def read(out: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(out / f"{table}.parquet")


def extra(out: Path) -> dict:
    return read_spec(out).extra


def assert_valid(out: Path) -> None:
    errors = [str(p) for p in validate_dataset(out) if p.severity == "error"]
    assert errors == []


def assert_accounted(stats: dict) -> None:
    assert stats["rows_read"] == stats["rows_kept"] + sum(stats["rows_dropped"].values())


# --------------------------------------------------------------------------------- Hillstrom

HILL_HEADER = ("recency,history_segment,history,mens,womens,zip_code,newbie,channel,segment,"
               "visit,conversion,spend\n")


def hill_csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "hillstrom.csv"
    path.write_text(HILL_HEADER + "".join(r + "\n" for r in rows))
    return path


HILL_ROWS = [
    "10,2) $100 - $200,142.44,1,0,Surburban,0,Phone,Womens E-Mail,1,1,35.5",
    "6,3) $200 - $350,329.08,1,1,Rural,1,Web,No E-Mail,0,0,0",
    "7,2) $100 - $200,180.65,0,1,Surburban,1,Web,Mens E-Mail,1,0,0",
    "2,1) $0 - $100,45.34,1,0,Urban,0,Web,Mens E-Mail,1,1,120",
]


@pytest.mark.shared_data
def test_hillstrom_reproduces_published_arm_figures(tmp_path: Path) -> None:
    out = import_hillstrom(shared_file("hillstrom/hillstrom.csv"), tmp_path / "hill")
    assert_valid(out)
    spec = read_spec(out)
    assert spec.action_names == ["none", "mens_email", "womens_email"]
    assert spec.period == "14D" and spec.currency == "USD" and spec.has_prices
    iv, ev, users = read(out, "interventions"), read(out, "events"), read(out, "users")
    sizes = iv["action"].value_counts()
    assert (sizes["mens_email"], sizes["womens_email"], sizes["none"]) == (21307, 21387, 21306)
    assert np.allclose(iv["propensity"], 1 / 3)
    assert len(users) == 64000 and users["user_id"].is_unique
    origin = pd.Timestamp(spec.origin)
    assert (iv["timestamp"] == origin).all()
    assert ev["timestamp"].between(origin, origin + pd.Timedelta("14D"),
                                   inclusive="left").all()
    # per-arm outcome means computed from the imported tables, vs the README
    visit = ev[ev["event_type"] == "visit"].groupby("user_id").size()
    buy = ev[ev["event_type"] == "purchase"].groupby("user_id")["revenue"].sum()
    per_user = iv.set_index("user_id")["action"].to_frame()
    per_user["visit"] = visit.reindex(per_user.index, fill_value=0) > 0
    per_user["buy"] = buy.reindex(per_user.index, fill_value=0) > 0
    per_user["spend"] = buy.reindex(per_user.index, fill_value=0.0)
    means = per_user.groupby("action").mean()
    got = {a: (round(100 * means.loc[a, "visit"], 1), round(100 * means.loc[a, "buy"], 2),
               round(means.loc[a, "spend"], 2)) for a in means.index}
    assert got == {"mens_email": (18.3, 1.25, 1.42), "womens_email": (15.1, 0.88, 1.08),
                   "none": (10.6, 0.57, 0.65)}
    assert extra(out)["rows_read"] == extra(out)["rows_kept"] == 64000


def test_hillstrom_synthetic_mapping_and_seeded_times(tmp_path: Path) -> None:
    src = hill_csv(tmp_path, HILL_ROWS)
    out = import_hillstrom(src, tmp_path / "a", email_cost=0.03)
    spec = read_spec(out)
    assert [a.cost for a in spec.actions] == [0.0, 0.03, 0.03]
    ev = read(out, "events")
    assert sorted(ev.loc[ev["event_type"] == "visit", "user_id"]) == [1, 3, 4]
    buys = ev[ev["event_type"] == "purchase"].set_index("user_id")["revenue"]
    assert buys.to_dict() == {1: 35.5, 4: 120.0}
    assert (ev["timestamp"] == pd.Timestamp(spec.origin) + pd.Timedelta("7D")).all()
    assert read(out, "users").columns.tolist()[1:] == [
        "recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie",
        "channel"]

    seeded = [read(import_hillstrom(src, tmp_path / f"s{i}", seed=s), "events")
              for i, s in enumerate((5, 5, 6))]
    pd.testing.assert_frame_equal(seeded[0], seeded[1])
    assert not seeded[0]["timestamp"].equals(seeded[2]["timestamp"])
    for ev in seeded:
        t = ev.pivot_table(index="user_id", columns="event_type", values="timestamp",
                           aggfunc="first").dropna()
        assert (t["purchase"] >= t["visit"]).all()
        assert ev["timestamp"].between(pd.Timestamp(spec.origin),
                                       pd.Timestamp(spec.origin) + pd.Timedelta("14D"),
                                       inclusive="left").all()


@pytest.mark.parametrize(("row", "column", "found"), [
    ("1,1) $0 - $100,45.34,1,0,Urban,0,Web,Kids E-Mail,0,0,0", "segment", "'Kids E-Mail'"),
    ("1,1) $0 - $100,45.34,1,0,Urban,0,Web,Mens E-Mail,2,0,0", "visit", "'2'"),
    ("1,1) $0 - $100,45.34,1,0,Urban,0,Web,Mens E-Mail,1,1,-3", "spend", "'-3'"),
    ("13,1) $0 - $100,45.34,1,0,Urban,0,Web,Mens E-Mail,0,0,0", "recency", "'13'"),
])
def test_hillstrom_bad_value_names_line_and_column(tmp_path: Path, row: str, column: str,
                                                   found: str) -> None:
    src = hill_csv(tmp_path, [HILL_ROWS[0], row])
    with pytest.raises(DataValidationError, match=rf"hillstrom.csv, row 3, column '{column}'"
                                                  rf".*found {found}"):
        import_hillstrom(src, tmp_path / "out")
    assert not (tmp_path / "out" / "events.parquet").exists()


# ----------------------------------------------------------------------------- Online Retail

RETAIL_HEADER = ("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,"
                 "Country\n")
RETAIL_ROWS = [
    "536365,85123A,HEART,6,2011-07-01 10:00:00,2.55,17850.0,United Kingdom",   # kept (summer)
    "536365,71053,LANTERN,2,2011-07-01 10:01:00,3.00,17850.0,United Kingdom",  # kept
    "536366,22633,WARMER,1,2011-01-10 09:00:00,1.85,,United Kingdom",          # no customer
    "A563185,B,Adjust bad debt,1,2011-08-12 14:50:00,11062.06,17850.0,United Kingdom",
    "C536379,22556,CLOTHES PEGS,-4,2011-07-02 09:41:00,1.65,17850.0,United Kingdom",  # return
    "536367,POST,POSTAGE,1,2011-01-10 09:00:00,18.00,12583.0,France",          # non-product
    "536368,22090,PAPER BUNTING,5,2011-01-10 09:00:00,0,12583.0,France",       # price 0
    "536369,22090,PAPER BUNTING,-5,2011-01-10 09:00:00,2.00,12583.0,France",   # sign mismatch
    "536370,84029G,HOT WATER BOTTLE,3,2011-01-10 09:00:00,3.39,12583.0,France",  # kept (winter)
]


def retail_csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "retail.csv"
    path.write_text(RETAIL_HEADER + "".join(r + "\n" for r in rows))
    return path


def test_online_retail_drop_reasons_returns_and_london_time(tmp_path: Path) -> None:
    out = import_online_retail(retail_csv(tmp_path, RETAIL_ROWS), tmp_path / "r")
    stats = extra(out)
    assert stats["rows_dropped"] == {"missing_customer_id": 1, "adjustment_invoice": 1,
                                     "cancellation": 0, "non_product_code": 1,
                                     "non_positive_price": 1, "quantity_sign_mismatch": 1}
    assert stats["rows_read"] == 9 and stats["rows_kept"] == 4
    ev = read(out, "events").set_index(["user_id", "event_type"])
    first = ev.loc[(17850, "purchase")]
    assert first["revenue"] == pytest.approx(6 * 2.55 + 2 * 3.00)
    assert first["timestamp"] == pd.Timestamp("2011-07-01 09:00", tz="UTC")  # BST -> UTC
    assert ev.loc[(17850, "return"), "revenue"] == pytest.approx(4 * 1.65)
    assert ev.loc[(12583, "purchase"), "timestamp"] == pd.Timestamp("2011-01-10 09:00", tz="UTC")
    assert read(out, "users").set_index("user_id")["country"].to_dict() == {
        12583: "France", 17850: "United Kingdom"}

    dropped = import_online_retail(retail_csv(tmp_path, RETAIL_ROWS), tmp_path / "d",
                                   cancellations="drop")
    assert extra(dropped)["rows_dropped"]["cancellation"] == 1
    assert "return" not in set(read(dropped, "events")["event_type"])


def test_online_retail_bad_date_and_option(tmp_path: Path) -> None:
    bad = RETAIL_ROWS[:2] + ["536371,22090,X,1,1st of May,2.0,12583.0,France"]
    with pytest.raises(DataValidationError, match=r"retail.csv, row 4, column 'InvoiceDate'"):
        import_online_retail(retail_csv(tmp_path, bad), tmp_path / "r")
    no_country = retail_csv(tmp_path, RETAIL_ROWS[:2])
    no_country.write_text(no_country.read_text().replace(",Country", ",Land"))
    with pytest.raises(DataValidationError, match=r"row 1, column 'Country'"):
        import_online_retail(no_country, tmp_path / "r")
    with pytest.raises(ConfigError, match="cancellations"):
        import_online_retail(retail_csv(tmp_path, RETAIL_ROWS), tmp_path / "r",
                             cancellations="keep")


@pytest.mark.shared_data
def test_online_retail_real_file_accounts_for_every_row(tmp_path: Path) -> None:
    out = import_online_retail(shared_file("online_retail/online_retail.csv.gz"),
                               tmp_path / "retail")
    assert_valid(out)
    stats = extra(out)
    assert stats["rows_read"] == 541909
    assert_accounted(stats)
    assert stats["rows_dropped"]["missing_customer_id"] == 135080
    assert stats["customers_read"] == 4372 and stats["invoices_read"] == 25900
    assert stats["line_value_read"] == pytest.approx(9747747.93, abs=0.01)
    ev = read(out, "events")
    assert set(ev["event_type"]) == {"purchase", "return"}
    assert len(ev) <= 22190  # invoices carrying a CustomerID
    assert ev.loc[ev["event_type"] == "purchase", "user_id"].nunique() <= 4339
    assert (ev["revenue"] >= 0).all()
    assert ev["timestamp"].min() == pd.Timestamp("2010-12-01 08:26", tz="UTC")  # GMT = UTC
    assert ev["timestamp"].max() == pd.Timestamp("2011-12-09 12:50", tz="UTC")
    spec = read_spec(out)
    assert (spec.period, spec.currency, spec.has_prices) == ("7D", "GBP", True)


# -------------------------------------------------------------------------------- Taobao

TAOBAO_HEADER = "user_id,item_id,category_id,behavior_type,timestamp\n"
T0 = 1511539200  # 2017-11-25 00:00 UTC+8


def taobao_csv(tmp_path: Path, rows: list[tuple]) -> Path:
    path = tmp_path / "taobao.csv"
    path.write_text(TAOBAO_HEADER + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def test_taobao_sessions_window_and_mapping(tmp_path: Path) -> None:
    rows = [(1, 10, 5, "pv", T0 + 60), (1, 10, 5, "cart", T0 + 660),
            (1, 10, 5, "buy", T0 + 60 + 45 * 60), (2, 11, 5, "fav", T0 + 100),
            (2, 11, 5, "pv", T0 - 86400 * 30), (2, 11, 5, "pv", T0 + 9 * 86400)]
    src = taobao_csv(tmp_path, rows)
    out = import_taobao(src, tmp_path / "t")
    stats = extra(out)
    assert stats["rows_dropped"] == {"before_window": 1, "after_window": 1}
    ev = read(out, "events")
    assert stats["events"] == {"cart": 1, "fav": 1, "purchase": 1, "view": 1, "visit": 3}
    visits = ev[ev["event_type"] == "visit"]
    assert visits.groupby("user_id").size().to_dict() == {1: 2, 2: 1}
    assert ev.groupby("user_id")["event_type"].first().eq("visit").all()
    assert read_spec(out).origin == "2017-11-24T16:00:00+00:00"
    longer = import_taobao(src, tmp_path / "t60", session_gap_minutes=60)
    assert extra(longer)["events"]["visit"] == 2
    plain = import_taobao(src, tmp_path / "t0", sessions=False)
    assert "visit" not in extra(plain)["events"]


def test_taobao_bad_behavior_names_line(tmp_path: Path) -> None:
    src = taobao_csv(tmp_path, [(1, 10, 5, "pv", T0 + 1), (1, 10, 5, "like", T0 + 2)])
    with pytest.raises(DataValidationError,
                       match=r"taobao.csv, row 3, column 'behavior_type'.*found 'like'"):
        import_taobao(src, tmp_path / "t")


def test_derive_visits_splits_on_gap_and_user() -> None:
    t = pd.to_datetime(["2020-01-01 10:00", "2020-01-01 10:30", "2020-01-01 11:01",
                        "2020-01-01 10:10"], utc=True)
    ev = pd.DataFrame({"user_id": [1, 1, 1, 2], "timestamp": t})
    visits = derive_visits(ev, pd.Timedelta(minutes=30))
    got = zip(visits["user_id"], visits["timestamp"].dt.strftime("%H:%M"), strict=True)
    assert list(got) == [(1, "10:00"), (1, "11:01"), (2, "10:10")]


@pytest.mark.shared_data
def test_taobao_real_file_matches_readme(tmp_path: Path) -> None:
    src = shared_file("taobao_userbehavior/taobao_userbehavior_sample.csv")
    out = import_taobao(src, tmp_path / "taobao")
    assert_valid(out)
    stats = extra(out)
    assert stats["rows_read"] == 84287
    assert stats["rows_dropped"] == {"before_window": 35, "after_window": 0}
    assert stats["users_with_dropped_rows"] == 32
    assert_accounted(stats)
    ev = read(out, "events")
    assert ev["user_id"].nunique() == 814
    raw = pd.read_csv(src)
    inside = raw[raw["timestamp"] >= T0]
    expected = inside["behavior_type"].map(
        {"pv": "view", "cart": "cart", "fav": "fav", "buy": "purchase"}).value_counts()
    got = ev.loc[ev["event_type"] != "visit", "event_type"].value_counts()
    assert got.sort_index().to_dict() == expected.sort_index().to_dict()
    assert raw["behavior_type"].value_counts().to_dict() == {
        "pv": 75693, "cart": 4494, "fav": 2351, "buy": 1749}
    origin = pd.Timestamp(read_spec(out).origin)
    assert ev["timestamp"].between(origin, origin + pd.Timedelta("9D"), inclusive="left").all()
    assert not read_spec(out).has_prices


# -------------------------------------------------------------------------- transactions

def write(tmp_path: Path, text: str, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("fmt", "tz", "value", "utc"), [
    ("iso", "UTC", "2021-07-01 12:00:00", "2021-07-01 12:00"),
    ("iso", "Europe/Paris", "2021-07-01T12:00", "2021-07-01 10:00"),
    ("iso", "Europe/Paris", "2021-07-01T12:00:00+03:00", "2021-07-01 09:00"),
    ("iso", "America/New_York", "2021-01-15", "2021-01-15 05:00"),
    ("iso", "Asia/Tokyo", "2021-01-15 09:30:15.250-05:00", "2021-01-15 14:30:15.250"),
    ("epoch", "Europe/Paris", "1625140800", "2021-07-01 12:00"),
    ("epoch_ms", "UTC", "1625140800000", "2021-07-01 12:00"),
    ("%d/%m/%Y %H:%M", "Europe/London", "01/07/2021 12:00", "2021-07-01 11:00"),
    ("%d/%m/%Y %H:%M %z", "UTC", "01/07/2021 12:00 +0200", "2021-07-01 10:00"),
])
def test_transactions_time_formats(tmp_path: Path, fmt: str, tz: str, value: str,
                                   utc: str) -> None:
    src = write(tmp_path, f"customer,ts,total\nu1,{value},9.5\n")
    out = import_transactions(src, tmp_path / "o", user_col="customer", time_col="ts",
                              amount_col="total", time_format=fmt, timezone=tz)
    ev = read(out, "events")
    assert ev["timestamp"].tolist() == [pd.Timestamp(utc, tz="UTC")]
    assert ev["event_type"].tolist() == ["purchase"] and ev["revenue"].tolist() == [9.5]


BAD_ORDERS = ("id,when,amount,sku\n"
              "1,2021-03-01 10:00,10.0,A\n"      # line 2: ok
              "\n"                                # line 3: blank -> missing user
              "2,not a date,5,B\n"                # line 4: bad time
              '3,2021-03-02 10:00,"1,5",C\n'      # line 5: non-numeric amount
              "4,2021-03-03 10:00,-2,D\n"         # line 6: negative amount
              " ,2021-03-04 10:00,3,E\n"          # line 7: missing user
              "5,2021-03-05 10:00,,F\n"           # line 8: missing amount
              "6,2021-03-06 10:00,7,G\n")         # line 9: ok


def test_transactions_bad_rows_named_by_line_column_expected_found(tmp_path: Path) -> None:
    src = write(tmp_path, BAD_ORDERS)
    with pytest.raises(DataValidationError) as info:
        import_transactions(src, tmp_path / "o", user_col="id", time_col="when",
                            amount_col="amount")
    got = [(p.file, p.row, p.column, p.found, p.count) for p in info.value.problems]
    assert got == [("orders.csv", 3, "id", "an empty value", 2),
                   ("orders.csv", 4, "when", "'not a date'", 1),
                   ("orders.csv", 5, "amount", "'1,5'", 2),
                   ("orders.csv", 6, "amount", "'-2'", 1)]
    assert "expected a number >= 0" in str(info.value.problems[2])
    assert "drop" in str(info.value)
    assert not (tmp_path / "o" / "events.parquet").exists()


def test_transactions_drop_bad_counts_every_row(tmp_path: Path) -> None:
    out = import_transactions(write(tmp_path, BAD_ORDERS), tmp_path / "o", user_col="id",
                              time_col="when", amount_col="amount", item_col="sku",
                              drop_bad=True, currency="EUR", period="1W")
    stats = extra(out)
    assert stats["rows_read"] == 8 and stats["rows_kept"] == 2
    assert stats["rows_dropped"] == {"missing_user": 2, "bad_time": 1, "bad_amount": 2,
                                     "negative_amount": 1}
    ev = read(out, "events")
    assert ev["user_id"].tolist() == [1, 6] and ev["item_id"].tolist() == ["A", "G"]
    spec = read_spec(out)
    assert (spec.currency, spec.period, spec.has_prices) == ("EUR", "1W", True)
    assert_valid(out)


def test_transactions_line_numbers_survive_quoted_newlines(tmp_path: Path) -> None:
    src = write(tmp_path, 'user,ts,note\n1,2021-01-01,"two\nlines"\n,2021-01-02,x\n')
    with pytest.raises(DataValidationError, match=r"orders.csv, row 4, column 'user'"):
        import_transactions(src, tmp_path / "o", user_col="user", time_col="ts")


def test_transactions_ids_and_no_prices(tmp_path: Path) -> None:
    src = write(tmp_path, "user,ts\nalice,2021-01-01\n007,2021-01-02\n")
    out = import_transactions(src, tmp_path / "o", user_col="user", time_col="ts")
    ev = read(out, "events")
    assert ev["user_id"].tolist() == ["007", "alice"]
    assert "revenue" not in ev.columns and not read_spec(out).has_prices


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"time_format": "dd/mm/yyyy"}, "time_format"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"period": "7 days"}, "period"),
    ({"amount_col": "user"}, "different columns"),
    ({"currency": " "}, "currency"),
])
def test_transactions_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TransactionsConfig(**{"user_col": "user", "time_col": "ts", **kwargs})


def test_transactions_missing_column_and_existing_dataset(tmp_path: Path) -> None:
    src = write(tmp_path, "user,ts\n1,2021-01-01\n")
    with pytest.raises(DataValidationError, match=r"row 1, column 'amount'"):
        import_transactions(src, tmp_path / "o", user_col="user", time_col="ts",
                            amount_col="amount")
    out = import_transactions(src, tmp_path / "o", user_col="user", time_col="ts")
    with pytest.raises(ConfigError, match="already holds a dataset"):
        import_transactions(src, out, user_col="user", time_col="ts")
    import_transactions(src, out, user_col="user", time_col="ts", overwrite=True)


def test_import_stats_refuses_lost_rows() -> None:
    with pytest.raises(ValueError, match="rows were lost"):
        ImportStats(rows_read=10, rows_kept=7, rows_dropped={"bad": 2})
    assert ImportStats(10, 7, {"bad": 3}).n_dropped == 3


# ------------------------------------------------------------------------------------ CLI

def test_cli_import_writes_config_and_prints_accounting(tmp_path: Path, capsys) -> None:
    src = write(tmp_path, BAD_ORDERS)
    out = tmp_path / "cli"
    rc = run_main(["import", "transactions", str(src), "--out", str(out), "--user-col", "id",
                   "--time-col", "when", "--amount-col", "amount", "--drop-bad",
                   "--timezone", "Europe/Berlin"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "rows read" in printed and "negative_amount" in printed
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["command"] == "import transactions"
    assert cfg["options"]["timezone"] == "Europe/Berlin" and cfg["options"]["drop_bad"]
    result = json.loads((out / "import.json").read_text())
    assert_accounted(result)
    assert read(out, "events")["timestamp"].iloc[0] == pd.Timestamp("2021-03-01 09:00", tz="UTC")


@pytest.mark.parametrize("args", [
    ["hillstrom", "SRC", "--user-col", "x"],
    ["transactions", "SRC", "--user-col", "id"],
    ["transactions", "SRC", "--user-col", "id", "--time-col", "when", "--amount-col",
     "amount"],
])
def test_cli_import_errors_exit_1_with_one_line(tmp_path: Path, capsys, args: list[str]) -> None:
    src = write(tmp_path, BAD_ORDERS)
    argv = [str(src) if a == "SRC" else a for a in args]
    rc = run_main(["import", *argv, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: ") and err.count("\n") == 1
