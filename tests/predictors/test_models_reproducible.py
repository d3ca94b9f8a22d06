"""A fit with the same seed gives the same model with 1 or 2 torch threads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from predictors.models.reproducible import (
    ThreadStableLayerNorm,
    clip_grad_norm_stable,
    make_layer_norms_thread_stable,
    stable_sum,
)

_FIT = """
import hashlib, json, sys
import torch
from predictors.models import BehaviorPredictor, PredictorConfig, toy_panel
fam, threads = sys.argv[1], int(sys.argv[2])
panel, users = toy_panel(n_users=300, n_periods=12, seed=3, targeted=True)
cfg = PredictorConfig(family=fam, epochs=2, hidden=32, history=4, device="cpu", seed=1,
                      num_threads=threads, batch_size=1024, patience=5)
p = BehaviorPredictor(cfg).fit(panel, ["none", "a1"], users, progress=False)
h = hashlib.sha256()
for k, v in sorted(p.net_.state_dict().items()):
    h.update(k.encode()); h.update(v.detach().contiguous().numpy().tobytes())
print(json.dumps({"weights": h.hexdigest(), "best_epoch": p.train_result_.best_epoch,
                  "val": [r["val_loss"] for r in p.train_result_.history]}))
"""


def _fit(family: str, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _FIT, family, str(threads)], check=True,
                         capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("family", ["transformer", "gru"])
def test_same_fit_with_one_or_two_threads(family: str) -> None:
    one, two = _fit(family, 1), _fit(family, 2)
    assert one["val"] == two["val"]  # bitwise, every epoch
    assert one["best_epoch"] == two["best_epoch"]
    assert one["weights"] == two["weights"]


def _with_threads(n: int, fn):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(old)


def test_stable_sum_is_the_sum_and_thread_independent() -> None:
    x = torch.randn(300_001, generator=torch.Generator().manual_seed(0))
    a, b = _with_threads(1, lambda: stable_sum(x)), _with_threads(2, lambda: stable_sum(x))
    assert torch.equal(a, b)
    assert float(a) == pytest.approx(float(x.double().sum()), abs=1e-2)


def test_thread_stable_layer_norm_matches_layer_norm() -> None:
    torch.manual_seed(0)
    enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16, 0.0,
                                                                       batch_first=True), 1,
                                      enable_nested_tensor=False)
    x = torch.randn(5, 3, 8)
    ref = enc(x)
    make_layer_norms_thread_stable(enc)
    assert isinstance(enc.layers[0].norm1, ThreadStableLayerNorm)
    assert torch.allclose(enc(x), ref, atol=1e-6)


def test_clip_grad_norm_stable_matches_torch() -> None:
    p1 = torch.nn.Parameter(torch.zeros(50))
    p2 = torch.nn.Parameter(torch.zeros(7))
    p1.grad, p2.grad = torch.full((50,), 2.0), torch.full((7,), -3.0)
    norm = clip_grad_norm_stable([p1, p2], 1.0)
    assert float(norm) == pytest.approx((50 * 4 + 7 * 9) ** 0.5, rel=1e-6)
    total = torch.sqrt((p1.grad ** 2).sum() + (p2.grad ** 2).sum())
    assert float(total) == pytest.approx(1.0, rel=1e-4)
