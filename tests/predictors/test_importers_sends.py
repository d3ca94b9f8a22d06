"""Orders + CRM send log import: catalog file, campaign mapping, origin / end of observation,
estimated propensities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.cli._app import run_main
from predictors import build_panel, read_spec
from predictors.errors import ConfigError, DataValidationError
from predictors.importers import import_transactions
from predictors.importers.catalog import read_catalog
from predictors.validate import validate_dataset

CATALOG = """actions:
  - name: email
    kind: message
    channel: email
    cost: 0.05
    campaigns: [newsletter, digest]
  - name: coupon_10
    kind: discount
    channel: email
    discount_rate: 0.1
    campaigns: [winback]
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def crm_files(tmp_path: Path, n_users: int = 60, n_weeks: int = 6, seed: int = 0,
              extra_send: str = "") -> dict[str, Path]:
    """Orders and sends of a shop whose logging policy e-mails recent buyers more often."""
    rng = np.random.default_rng(seed)
    origin = pd.Timestamp("2025-01-06", tz="UTC")
    orders, sends = ["customer,ordered_at,total"], ["customer,sent_at,campaign,cost"]
    bought_last = np.zeros(n_users, dtype=bool)
    for w in range(n_weeks):
        start = origin + pd.Timedelta(days=7 * w)
        p_send = np.where(bought_last, 0.8, 0.2)
        sent = rng.random(n_users) < p_send
        coupon = sent & (rng.random(n_users) < 0.3)
        for u in np.flatnonzero(sent):
            camp = "winback" if coupon[u] else ("newsletter" if w % 2 else "digest")
            sends.append(f"u{u},{(start + pd.Timedelta(hours=9)).isoformat()},{camp},0.04")
        buy = rng.random(n_users) < 0.15 + 0.2 * sent
        for u in np.flatnonzero(buy):
            t = start + pd.Timedelta(hours=30 + u % 50)
            orders.append(f"u{u},{t.isoformat()},{rng.uniform(10, 90):.2f}")
        bought_last = buy
    return {"orders": write(tmp_path / "orders.csv", "\n".join(orders) + "\n"),
            "sends": write(tmp_path / "sends.csv", "\n".join(sends) + extra_send + "\n"),
            "catalog": write(tmp_path / "catalog.yaml", CATALOG)}


def import_crm(files: dict[str, Path], out: Path, **kw) -> Path:
    return import_transactions(files["orders"], out, user_col="customer", time_col="ordered_at",
                               amount_col="total", sends=files["sends"],
                               sends_user_col="customer", sends_time_col="sent_at",
                               sends_campaign_col="campaign", catalog=files["catalog"],
                               **{"sends_cost_col": "cost", **kw})


def test_catalog_adds_none_and_maps_campaigns(tmp_path: Path) -> None:
    cat = read_catalog(write(tmp_path / "c.yaml", CATALOG))
    assert [a.name for a in cat.actions] == ["none", "email", "coupon_10"]
    assert cat.campaign_map == {"newsletter": "email", "digest": "email",
                                "winback": "coupon_10"}
    assert not cat.entries[2].cost_given  # coupon_10 has no cost: taken from the sends


@pytest.mark.parametrize("text, message", [
    ("actions: []", "non-empty list `actions`"),
    ("actions:\n  - {name: email, channel: email, cost: 1, colour: red}", "unknown field 'colour'"),
    ("actions:\n  - {name: email, cost: 1}", "`channel` is needed"),
    ("actions:\n  - {name: c, kind: discount, channel: email, cost: 1}", "discount_rate"),
    ("actions:\n  - {name: a, channel: email, cost: 1, campaigns: [x]}\n"
     "  - {name: b, channel: push, cost: 1, campaigns: [x]}", "campaign 'x' maps to both"),
    ("actions:\n  - {name: a, channel: email, cost: -1}", "cost"),
    ("actions:\n  - {name: a, channel: email, cost: cheap}", "`cost` must be a number"),
    ("actions: [unclosed", "not a readable YAML catalog"),
])
def test_catalog_errors_name_file_and_action(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="c.yaml") as e:
        read_catalog(write(tmp_path / "c.yaml", text))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_orders_and_sends_import_with_estimated_propensities(tmp_path: Path) -> None:
    files = crm_files(tmp_path, n_users=200)
    out = import_crm(files, tmp_path / "ds", sends_cost_col="cost",
                     observed_until="2025-02-17", propensity_model="logistic")
    assert not [p for p in validate_dataset(out) if p.severity == "error"]
    spec = read_spec(out)
    assert spec.action_names == ["none", "email", "coupon_10"]
    assert spec.actions[2].cost == pytest.approx(0.04)  # from the sends' cost column
    assert spec.actions[1].cost == pytest.approx(0.05)  # from the catalog file
    prop = spec.extra["propensity"]
    assert prop["source"] == "estimated" and "ESTIMATED" in prop["warning"]
    assert prop["log_loss"] < prop["log_loss_marginal"]  # the policy depends on the history
    panel = build_panel(out)
    # Every user-period is a logged decision with a propensity: none rows fill the gaps.
    assert (panel["action_index"] >= 0).all()
    assert panel["propensity"].between(0, 1, inclusive="right").all()
    sends = pd.read_csv(files["sends"])
    logged = panel[panel["action"] != "none"]
    assert len(logged) == len(sends)  # one send per user and week in this log
    assert int(panel["period"].max()) == 5  # 6 weeks up to --observed-until


def test_observed_until_keeps_a_quiet_last_week(tmp_path: Path) -> None:
    files = crm_files(tmp_path, n_weeks=4)
    plain = import_crm(files, tmp_path / "a", propensity_model="logistic")
    longer = import_crm(files, tmp_path / "b", propensity_model="logistic",
                        origin="2025-01-06", observed_until="2025-02-10")
    assert int(build_panel(plain)["period"].max()) == 3
    assert int(build_panel(longer)["period"].max()) == 4  # a fifth week without any event
    assert read_spec(longer).origin.startswith("2025-01-06")


def test_logged_propensity_column_is_used_and_flagged(tmp_path: Path) -> None:
    files = crm_files(tmp_path)
    df = pd.read_csv(files["sends"])
    df["p"] = 0.5
    df.to_csv(files["sends"], index=False)
    out = import_crm(files, tmp_path / "ds", sends_propensity_col="p", sends_cost_col="cost")
    assert read_spec(out).extra["propensity"] == {"source": "logged", "column": "p"}
    iv = pd.read_parquet(out / "interventions.parquet")
    assert (iv["propensity"] == 0.5).all() and (iv["action"] != "none").all()


@pytest.mark.parametrize("extra, column, expected", [
    ("\nu1,2025-01-07T09:00:00Z,black_friday,0.04", "campaign", "a campaign listed in"),
    ("\nu1,yesterday,newsletter,0.04", "sent_at", "a valid send time"),
    ("\nu1,2024-12-01T09:00:00Z,newsletter,0.04", "sent_at", "at or after --origin"),
    ("\nu1,2025-01-07T09:00:00Z,newsletter,-1", "cost", "a cost >= 0"),
])
def test_bad_send_rows_name_file_line_column(tmp_path: Path, extra: str, column: str,
                                             expected: str) -> None:
    files = crm_files(tmp_path, extra_send=extra)
    n_lines = len(files["sends"].read_text().splitlines())
    with pytest.raises(DataValidationError) as e:
        import_crm(files, tmp_path / "ds", origin="2025-01-06", sends_cost_col="cost")
    msg = str(e.value)
    assert f"sends.csv, row {n_lines}, column '{column}'" in msg and expected in msg
    assert not (tmp_path / "ds" / "dataset.json").exists()
    # --drop-bad drops and counts the row instead.
    out = import_crm(files, tmp_path / "ds2", origin="2025-01-06", sends_cost_col="cost",
                     drop_bad=True, propensity_model="logistic")
    dropped = json.loads((out / "import.json").read_text())["sends"]["rows_dropped"]
    assert sum(dropped.values()) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"sends": "s.csv"}, "--sends needs --sends-user-col and --sends-time-col and "
                         "--sends-campaign-col and --catalog"),
    ({"catalog": "c.yaml"}, "--catalog needs a send log"),
    ({"origin": "soon"}, "--origin must be an ISO 8601 time"),
    ({"propensity_model": "forest"}, "--propensity-model must be one of boosting, logistic"),
    ({"origin": "2025-02-01", "observed_until": "2025-01-01"}, "must be after --origin"),
])
def test_option_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    orders = write(tmp_path / "orders.csv", "customer,ordered_at\nu1,2025-01-07T10:00:00Z\n")
    with pytest.raises(ConfigError) as e:
        import_transactions(orders, tmp_path / "ds", user_col="customer",
                            time_col="ordered_at", **kwargs)
    assert message in str(e.value)


def test_cli_import_with_sends_prints_sends_and_propensity_warning(tmp_path: Path,
                                                                  capsys) -> None:
    files = crm_files(tmp_path)
    code = run_main(["import", "transactions", str(files["orders"]), "--user-col", "customer",
                     "--time-col", "ordered_at", "--amount-col", "total",
                     "--sends", str(files["sends"]), "--sends-user-col", "customer",
                     "--sends-time-col", "sent_at", "--sends-campaign-col", "campaign",
                     "--sends-cost-col", "cost", "--catalog", str(files["catalog"]),
                     "--propensity-model", "logistic", "--out", str(tmp_path / "ds")])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "sends per action" in cap.out and "unknown_campaign" in cap.out
    assert "propensities estimated (logistic" in cap.out
    assert "ESTIMATED" in cap.err
    code = run_main(["import", "hillstrom", str(files["orders"]), "--catalog", "x.yaml",
                     "--out", str(tmp_path / "h")])
    assert code == 1
    assert "--catalog applies to `nudgegym import transactions` only" in capsys.readouterr().err
