"""End to end through the CLI on a tiny dataset with a planted effect."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from agents.cli._app import run_main
from predictors.contract import ActionSpec, DatasetSpec
from predictors.dataset import write_dataset
from predictors.models import BehaviorPredictor, toy_panel

ORIGIN = pd.Timestamp("2024-01-01", tz="UTC")


def _dataset(folder, n_users=400, n_periods=8, seed=0):
    """Turn the toy panel into a contract dataset (events, interventions, users)."""
    panel, users = toy_panel(n_users, n_periods, seed=seed, lift=(0.0, 2.0))
    ev = []
    for r in panel.itertuples(index=False):
        ts = ORIGIN + pd.Timedelta(days=7 * r.period, hours=1)
        ev += [(r.user_id, ts, "visit", 0.0)] * r.visits
        ev += [(r.user_id, ts, "view", 0.0)] * r.views
        if r.purchases:
            ev.append((r.user_id, ts, "purchase", r.revenue))
    events = pd.DataFrame(ev, columns=["user_id", "timestamp", "event_type", "revenue"])
    inter = panel[["user_id", "period", "action", "propensity"]].copy()
    inter["timestamp"] = ORIGIN + pd.to_timedelta(7 * inter.pop("period"), unit="D")
    spec = DatasetSpec(actions=(ActionSpec("none", 0.0, "none"),
                                ActionSpec("a1", 0.05, "message", channel="email")),
                       period="7D", origin=ORIGIN.isoformat(), source="toy")
    write_dataset(folder, spec, events, inter[["user_id", "timestamp", "action", "propensity"]],
                  users)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _dataset(tmp_path_factory.mktemp("toy") / "data")


def test_train_eval_predict(data, tmp_path):
    run = tmp_path / "run"
    assert run_main(["train-predictor", "--data", str(data), "--model", "logistic", "--out",
                     str(run), "--epochs", "25", "--no-progress", "--lr", "0.02"]) == 0
    for f in ("config.json", "metrics.json", "predictor.json", "weights.pt",
              "loss_curves.png", "calibration_val.png"):
        assert (run / f).is_file(), f
    torch.load(run / "weights.pt", weights_only=True)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["options"]["predictor"]["family"] == "logistic"

    ev = tmp_path / "eval"
    assert run_main(["eval-predictor", "--predictor", str(run), "--data", str(data),
                     "--out", str(ev)]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    assert m["scope"].startswith("test users")
    assert m["heads"]["visit"]["auc"] > 0.6

    out = tmp_path / "pred.parquet"
    assert run_main(["predict", "--predictor", str(run), "--data", str(data),
                     "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert {"user_id", "period", "p_visit__a1", "p_purchase__none", "expected_revenue__a1",
            "p_churn__none"} <= set(df.columns)
    # The planted effect: a1 raises P(visit) (logit +2) for every user-period.
    lift = (df["p_visit__a1"] - df["p_visit__none"]).to_numpy()
    assert lift.mean() > 0.15 and np.mean(lift > 0) > 0.9
    assert BehaviorPredictor.load(run).config.family == "logistic"


def test_bad_family_is_one_line_error(data, tmp_path, capsys):
    rc = run_main(["train-predictor", "--data", str(data), "--model", "xgb", "--out",
                   str(tmp_path / "r")])
    assert rc == 1
    assert "--model must be one of" in capsys.readouterr().err  # the option, not the field


def test_bench_writes_json(tmp_path):
    rc = run_main(["bench", "predictor", "--families", "logistic,gru", "--users", "40",
                   "--periods", "5", "--epochs", "1", "--step-batch", "64", "--device", "cpu",
                   "--out", str(tmp_path / "b")])
    assert rc == 0
    res = json.loads((tmp_path / "b" / "bench.json").read_text())["results"]
    assert [r["family"] for r in res] == ["logistic", "gru"]
    assert all(r["carried_state_user_steps_per_s"] > 0 for r in res)
