"""Damaged or mismatched predictor checkpoints raise CheckpointError."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from predictors.errors import CheckpointError
from predictors.models import BehaviorPredictor, PredictorConfig, toy_panel


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    panel, users = toy_panel(n_users=30, n_periods=5, seed=1)
    root = tmp_path_factory.mktemp("ckpt")
    for fam in ("gru", "logistic"):
        cfg = PredictorConfig(family=fam, epochs=1, hidden=8, history=2, device="cpu")
        BehaviorPredictor(cfg).fit(panel, ["none", "a1"], users, progress=False).save(root / fam)
    return root


def _copy(saved, tmp_path, fam="gru"):
    dst = tmp_path / fam
    shutil.copytree(saved / fam, dst)
    return dst


def test_loads_with_weights_only(saved):
    blob = torch.load(saved / "gru" / "weights.pt", weights_only=True)
    assert blob["family"] == "gru" and "state_dict" in blob
    assert BehaviorPredictor.load(saved / "gru").config.family == "gru"


def test_truncated_weights(saved, tmp_path):
    run = _copy(saved, tmp_path)
    data = (run / "weights.pt").read_bytes()
    (run / "weights.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot be read"):
        BehaviorPredictor.load(run)


def test_wrong_family(saved, tmp_path):
    run = _copy(saved, tmp_path)
    shutil.copy(saved / "logistic" / "weights.pt", run / "weights.pt")
    with pytest.raises(CheckpointError, match="'logistic' model"):
        BehaviorPredictor.load(run)


def test_mismatched_shapes(saved, tmp_path):
    run = _copy(saved, tmp_path)
    meta = json.loads((run / "predictor.json").read_text())
    meta["config"]["hidden"] = 16
    (run / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match"):
        BehaviorPredictor.load(run)


def test_corrupted_json_and_missing_file(saved, tmp_path):
    run = _copy(saved, tmp_path)
    (run / "predictor.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupted"):
        BehaviorPredictor.load(run)
    (run / "weights.pt").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        BehaviorPredictor.load(run)


def test_not_a_checkpoint(saved, tmp_path):
    run = _copy(saved, tmp_path)
    torch.save({"something": torch.zeros(2)}, run / "weights.pt")
    with pytest.raises(CheckpointError, match="not a nudgegym"):
        BehaviorPredictor.load(run)
