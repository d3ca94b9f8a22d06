"""Data as Demonstrator: drifted copies of the training users and the ``dad`` training option."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from predictors.errors import ConfigError
from predictors.models import BehaviorPredictor, PredictorConfig, toy_panel
from predictors.models.dad import activity_means, concat_tensors, drifted_copy
from predictors.models.train import Batch, batch_loss


@pytest.fixture(scope="module")
def fitted():
    panel, users = toy_panel(n_users=300, n_periods=12, seed=0, targeted=True)
    p = BehaviorPredictor(PredictorConfig(family="gru", hidden=16, epochs=2, device="cpu",
                                          seed=0, num_threads=1)).fit(
        panel, ["none", "a1"], users, progress=False)
    return p, panel, users, p.tensors(panel, users)


def test_drifted_copy_keeps_the_past_and_the_labels_and_draws_from_the_model(fitted) -> None:
    p, _, _, data = fitted
    means = activity_means(data)
    a = drifted_copy(p.net_, data, np.random.default_rng(1), means, 1e4)
    b = drifted_copy(p.net_, data, np.random.default_rng(1), means, 1e4)
    c = drifted_copy(p.net_, data, np.random.default_rng(2), means, 1e4)
    assert np.array_equal(a.raw, b.raw) and not np.array_equal(a.raw, c.raw)
    assert np.array_equal(a.target, data.raw)  # labels stay the logged outcomes
    t = np.arange(data.raw.shape[1])[None, :]
    # the loss covers exactly the steps after each user's start, inside the user's history
    assert not (a.loss_mask & ~data.valid).any() and a.loss_mask.sum() > 0
    first = np.argmax(a.loss_mask, axis=1)  # first loss step = start + 1
    has = a.loss_mask.any(axis=1)
    start = first[has] - 1
    before = t[0][None, :] < start[:, None]
    assert np.array_equal(a.raw[has][before], data.raw[has][before])
    assert np.array_equal(a.loss_mask[has], data.valid[has] & (t > start[:, None]))
    # drifted rows are model draws: a planted +4 on the visit logit shows in the inputs
    with torch.no_grad():
        p.net_.heads.shared.bias[0] += 4.0
    try:
        hot = drifted_copy(p.net_, data, np.random.default_rng(1), means, 1e4)
    finally:
        with torch.no_grad():
            p.net_.heads.shared.bias[0] -= 4.0
    m = hot.loss_mask
    drifted_rate = (hot.raw[:, :-1][m[:, 1:]][:, 0] > 0).mean()
    true_rate = (data.raw[:, :-1][m[:, 1:]][:, 0] > 0).mean()
    assert drifted_rate > true_rate + 0.2


def test_the_loss_reads_labels_from_the_target_and_only_masked_steps(fitted) -> None:
    p, _, _, data = fitted
    a = drifted_copy(p.net_, data, np.random.default_rng(3), activity_means(data), 1e4)
    w = data.valid.astype(np.float32)
    with torch.no_grad():
        drift_loss, _ = batch_loss(p.net_, Batch.from_tensors(a, w, torch.device("cpu")))
        # the same inputs with the drifted rows as labels give another loss
        own = concat_tensors([a])
        own.target = a.raw
        own_loss, _ = batch_loss(p.net_, Batch.from_tensors(own, w, torch.device("cpu")))
        # without a target and a mask the batch is the plain one
        plain, _ = batch_loss(p.net_, Batch.from_tensors(data, w, torch.device("cpu")))
        whole = concat_tensors([data])
        same, _ = batch_loss(p.net_, Batch.from_tensors(whole, w, torch.device("cpu")))
    assert float(drift_loss) != pytest.approx(float(own_loss), rel=1e-4)
    assert float(same) == pytest.approx(float(plain), rel=1e-6)


def test_fit_with_dad_continues_on_the_union_and_saves_the_option(fitted, tmp_path) -> None:
    _, panel, users, _ = fitted
    cfg = PredictorConfig(family="gru", hidden=16, epochs=2, device="cpu", seed=0,
                          num_threads=1, dad=1)
    p = BehaviorPredictor(cfg).fit(panel, ["none", "a1"], users, progress=False)
    rounds = [h.get("dad_round", 0) for h in p.train_result_.history]
    assert rounds[0] == 0 and rounds[-1] == 1
    plain = BehaviorPredictor(PredictorConfig(family="gru", hidden=16, epochs=2, device="cpu",
                                              seed=0, num_threads=1)).fit(
        panel, ["none", "a1"], users, progress=False)
    w1, w0 = p.net_.state_dict(), plain.net_.state_dict()
    assert any(not torch.equal(w1[k], w0[k]) for k in w1)
    folder = p.save(tmp_path / "dad")
    assert json.loads((folder / "predictor.json").read_text())["config"]["dad"] == 1
    assert BehaviorPredictor.load(folder).config.dad == 1
    with pytest.raises(ConfigError, match="dad"):
        BehaviorPredictor(PredictorConfig(family="markov", dad=1)).fit(
            panel, ["none", "a1"], users, progress=False)
    with pytest.raises(ConfigError, match="dad"):
        PredictorConfig(dad=-1)
