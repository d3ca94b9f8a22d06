"""From the command line: the synthetic shop exported as orders.csv + sends.csv, imported back."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

from agents.cli._app import run_main
from predictors import build_panel, read_spec


def test_generate_export_crm_then_import_recovers_catalog_and_propensities(
        tmp_path: Path, capsys) -> None:
    shop, crm = tmp_path / "shop", tmp_path / "crm"
    assert run_main(["generate", "--users", "300", "--periods", "10", "--seed", "1",
                     "--out", str(shop), "--export-crm", str(crm)]) == 0
    orders, sends = pd.read_csv(crm / "orders.csv"), pd.read_csv(crm / "sends.csv")
    events = pd.read_parquet(shop / "events.parquet")
    assert len(orders) == int((events["event_type"] == "purchase").sum())
    iv = pd.read_parquet(shop / "interventions.parquet")
    assert len(sends) == int((iv["action"] != "none").sum())
    assert set(sends.columns) >= {"customer_id", "sent_at", "campaign", "cost", "propensity"}
    capsys.readouterr()
    code = run_main(["import", "transactions", str(crm / "orders.csv"),
                     "--user-col", "customer_id", "--time-col", "ordered_at",
                     "--amount-col", "total", "--sends", str(crm / "sends.csv"),
                     "--sends-user-col", "customer_id", "--sends-time-col", "sent_at",
                     "--sends-campaign-col", "campaign", "--catalog", str(crm / "catalog.yaml"),
                     "--origin", "2025-01-06", "--observed-until", "2025-03-17",
                     "--propensity-model", "logistic", "--out", str(tmp_path / "myshop")])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    spec = read_spec(tmp_path / "myshop")
    assert spec.actions == read_spec(shop).actions  # same catalog, costs and discount rates
    assert spec.extra["propensity"]["source"] == "estimated"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine, truth = build_panel(tmp_path / "myshop"), build_panel(shop)
    assert int(mine["period"].max()) == 9  # ten weeks up to --observed-until
    truth["user_id"] = [f"c{u:06d}" for u in truth["user_id"]]
    both = mine.merge(truth, on=["user_id", "period"], suffixes=("", "_true"))
    assert (both["action"] == both["action_true"]).all()  # the sends are the logged actions
    err = (both["propensity"] - both["propensity_true"]).abs()
    assert err.median() < 0.1
    imp = json.loads((tmp_path / "myshop" / "import.json").read_text())
    assert imp["sends"]["rows_kept"] == len(sends)
