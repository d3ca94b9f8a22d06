"""`nudgegym fidelity` on real logs without truth/: the replay alone, on held-out users.

Small slices of the public Online Retail (orders only: no visits) and Taobao (no prices, no
sends) logs; skipped when the data is not beside the checkout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from shared_data import shared_file

from agents.cli import run_main
from predictors import build_panel, load_users, open_dataset
from predictors.models import BehaviorPredictor, PredictorConfig

pytestmark = pytest.mark.shared_data


def _fit(data: Path, out: Path) -> Path:
    ds = open_dataset(data)
    pred = BehaviorPredictor(PredictorConfig(family="logistic", epochs=1, hidden=8,
                                             device="cpu", seed=0))
    users = load_users(ds, validate=False) if ds.users_path is not None else None
    pred.fit(build_panel(ds), ds.spec.action_names, users=users, progress=False)
    return pred.save(out)


def _replay(tmp_path: Path, kind: str, src: Path) -> dict:
    data = tmp_path / "data"
    assert run_main(["import", kind, str(src), "--out", str(data)]) == 0
    pred = _fit(data, tmp_path / "pred")
    out = tmp_path / "fid"
    assert run_main(["fidelity", "--predictor", str(pred), "--data", str(data), "--out",
                     str(out), "--horizon", "4", "--replicates", "2"]) == 0
    res = json.loads((out / "fidelity.json").read_text())
    assert "policies" not in res  # no truth/: no rule values
    rep, gate = res["replay"], res["gate"]
    assert rep["horizon"] == 4 and rep["users"] > 0
    for key in ("visit_rate", "purchase_rate", "revenue_per_user", "survival"):
        assert len(rep["per_period"][key]["sim"]) == len(rep["per_period"][key]["log"]) == 4
    assert rep["summary"]["purchase_rate"]["log"] > 0
    assert rep["summary"]["purchase_rate"]["rel_error"] is not None
    assert 0 < rep["summary"]["purchase_rate"]["log_rel_se"] < 1
    assert rep["max_period_rel_error"]["purchase_rate"] is not None
    assert gate["ranking_ok"] is None and "not checked" in gate["verdict"]
    assert "purchase_rate" in " ".join(c["check"] for c in gate["checks"])
    assert (out / "report.md").is_file() and (out / "fidelity_replay.png").is_file()
    return rep | {"gate": gate}


def test_replay_on_an_online_retail_slice(tmp_path: Path, one_torch_thread) -> None:
    src = shared_file("online_retail/online_retail.csv.gz")
    raw = pd.read_csv(src, dtype={"InvoiceNo": str, "StockCode": str})
    keep = sorted(raw["CustomerID"].dropna().unique())[:300]
    raw[raw["CustomerID"].isin(keep)].to_csv(tmp_path / "or.csv.gz", index=False)
    rep = _replay(tmp_path, "online-retail", tmp_path / "or.csv.gz")
    # an orders log: purchase is the activity, visits are not in the data and not checked
    assert rep["activity"] == "purchase"
    assert rep["summary"]["visit_rate"]["log"] == 0
    assert rep["summary"]["visit_rate"]["rel_error"] is None
    assert "visit_rate" in rep["gate"]["not_checked"]
    assert rep["summary"]["revenue_per_user_period"]["rel_error"] is not None


def test_replay_on_a_taobao_slice(tmp_path: Path, one_torch_thread) -> None:
    src = shared_file("taobao_userbehavior/taobao_userbehavior_sample.csv")
    raw = pd.read_csv(src)
    keep = sorted(raw["user_id"].unique())[:300]
    raw[raw["user_id"].isin(keep)].to_csv(tmp_path / "tb.csv", index=False)
    rep = _replay(tmp_path, "taobao", tmp_path / "tb.csv")
    assert rep["activity"] == "visit" and rep["summary"]["visit_rate"]["rel_error"] is not None
    # no prices: the simulator draws no revenue, and revenue is not checked
    assert rep["summary"]["revenue_per_user_period"]["sim"] == 0
    assert "revenue_per_user_period" in rep["gate"]["not_checked"]
    assert any("no order values" in s for s in rep["not_informed"])
