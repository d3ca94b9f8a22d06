"""Training loop of the behavior predictors: split by user, minibatches of users, early stopping.

Loss per minibatch (each term a weighted mean over the rows that carry its label, using the
outputs of the action the row's outcomes are attributed to): binary cross-entropy of visit,
purchase, unsubscribe and churn, plus the Gaussian negative log-likelihood of log revenue on
purchase rows (revenue given a purchase is log-normal). With ``ipw`` each row is weighted by
``1 / propensity`` of its logged action (clipped at ``ipw_clip``, normalised to mean 1 over the
training rows; rows of unknown propensity weigh 1), so that actions a targeted campaign sent to
particular users are learnt as if they had been sent at random.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from predictors.models.config import PredictorConfig, resolve_device
from predictors.models.families import BehaviorNet
from predictors.models.reproducible import (
    clip_grad_norm_stable,
    stable_sum,
    warn_if_thread_dependent,
)
from predictors.models.sequence import PanelTensors

LOSS_TERMS = ("visit", "purchase", "revenue", "unsubscribe", "churn")


@dataclass
class Batch:
    """Torch tensors of a group of users (see :class:`PanelTensors`)."""

    raw: torch.Tensor
    action: torch.Tensor
    loss_action: torch.Tensor
    valid: torch.Tensor
    churn: torch.Tensor
    weight: torch.Tensor
    static: torch.Tensor
    target: torch.Tensor

    @classmethod
    def from_tensors(cls, data: PanelTensors, weight: np.ndarray,
                     device: torch.device) -> Batch:
        """Move ``data`` (and per-step ``weight`` ``(U, T)``) to ``device``.

        The weight is zeroed outside ``data.effective_mask`` and the labels are read from
        ``data.target_raw`` (both differ from ``valid`` / ``raw`` only in a drifted copy).
        """
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a).to(device)
        w = weight.astype(np.float32)
        if data.loss_mask is not None:
            w = w * data.loss_mask
        target = t(data.target) if data.target is not None else None
        raw = t(data.raw)
        return cls(raw, t(data.action), t(data.loss_action), t(data.valid), t(data.churn),
                   t(w), t(data.static), raw if target is None else target)

    def take(self, users: torch.Tensor) -> Batch:
        """Rows of ``users``, trailing padding trimmed."""
        valid = self.valid[users]
        t = int(valid.sum(dim=1).max().item())
        return Batch(self.raw[users, :t], self.action[users, :t], self.loss_action[users, :t],
                     valid[:, :t], self.churn[users, :t], self.weight[users, :t],
                     self.static[users], self.target[users, :t])


def ipw_weights(data: PanelTensors, clip: float) -> np.ndarray:
    """Per-step weights ``1 / propensity`` clipped at ``clip``, mean 1 over valid steps."""
    p = data.propensity
    w = np.where(np.isfinite(p) & (p > 0), 1.0 / np.where(p > 0, p, 1.0), 1.0)
    w = np.minimum(w, clip) * data.valid
    mean = w[data.valid].mean() if data.valid.any() else 1.0
    return (w / mean).astype(np.float32)


def batch_loss(net: BehaviorNet, b: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of a batch and its terms (weighted means)."""
    out = net(b.raw, b.action, b.static)  # (B, T, A, 6)
    known = b.valid & (b.loss_action >= 0)
    idx = b.loss_action.clamp(min=0)[..., None, None].expand(*idx_shape(out))
    o = out.gather(2, idx).squeeze(2)  # (B, T, 6)
    w = b.weight * known
    bce = nn.functional.binary_cross_entropy_with_logits
    terms: dict[str, torch.Tensor] = {}

    def wmean(x: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
        return stable_sum(x * ww) / stable_sum(ww).clamp(min=1e-8)

    tgt = b.target
    labels = {"visit": (0, tgt[..., 0] > 0), "purchase": (1, tgt[..., 3] > 0),
              "unsubscribe": (4, tgt[..., 5] > 0)}
    for name, (ch, y) in labels.items():
        terms[name] = wmean(bce(o[..., ch], y.float(), reduction="none"), w)
    has_churn = torch.isfinite(b.churn)
    terms["churn"] = wmean(bce(o[..., 5], torch.nan_to_num(b.churn), reduction="none"),
                           w * has_churn)
    rev = tgt[..., 6]
    has_rev = (tgt[..., 3] > 0) & (rev > 0)
    logr = torch.log(torch.where(has_rev, rev, torch.ones_like(rev)))
    mu, log_sigma = o[..., 2], o[..., 3].clamp(-5, 5)
    nll = log_sigma + 0.5 * ((logr - mu) / log_sigma.exp()) ** 2 + 0.5 * math.log(2 * math.pi)
    terms["revenue"] = wmean(nll, w * has_rev)
    total = sum(terms.values())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def idx_shape(out: torch.Tensor) -> tuple[int, ...]:
    """Shape to gather one action's outputs from ``(B, T, A, 6)``."""
    return (out.shape[0], out.shape[1], 1, out.shape[3])


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (``0`` leaves them as they are)."""
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def split_users(n_users: int, val_fraction: float, test_fraction: float,
                seed: int) -> np.ndarray:
    """Seeded user split: ``(n_users,)`` array of ``"train"``, ``"val"``, ``"test"``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_users)
    n_test = int(round(test_fraction * n_users))
    n_val = int(round(val_fraction * n_users))
    out = np.full(n_users, "train", dtype=object)
    out[order[:n_test]] = "test"
    out[order[n_test:n_test + n_val]] = "val"
    return out


@dataclass
class TrainResult:
    """What training produced besides the weights.

    Attributes:
        history: One dict per epoch: ``epoch``, ``train_loss``, ``val_loss``, terms, seconds.
        best_epoch: Epoch whose weights were kept (lowest validation loss).
        rows_per_second: Training throughput in user-periods per second.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    rows_per_second: float = 0.0


def _evaluate(net: BehaviorNet, b: Batch, users_per_batch: int) -> tuple[float, dict]:
    net.eval()
    tot, terms, n = 0.0, dict.fromkeys(LOSS_TERMS, 0.0), 0
    with torch.no_grad():
        for s in range(0, b.raw.shape[0], users_per_batch):
            sub = b.take(torch.arange(s, min(s + users_per_batch, b.raw.shape[0]),
                                      device=b.raw.device))
            loss, tr = batch_loss(net, sub)
            k = int(sub.valid.sum())
            tot += float(loss) * k
            for key in terms:
                terms[key] += tr[key] * k
            n += k
    return tot / max(n, 1), {k: v / max(n, 1) for k, v in terms.items()}


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def init_output_bias(net: BehaviorNet, data: PanelTensors) -> None:
    """Start every head at the training data's base rate (and revenue at its log mean/std).

    Without it a short fit starts from P = 0.5 for rare events (a purchase rate of a few %)
    and from a log-revenue of 0, and a small budget leaves the heads far from the data.
    """
    heads = getattr(net, "heads", None)
    if heads is None:
        return
    layer = heads.shared if heads.conditioning == "heads" else heads.mlp[-1]
    raw = data.raw[data.valid]
    if len(raw) == 0:
        return
    churn = data.churn[data.valid]
    churn = churn[np.isfinite(churn)]
    rev = raw[:, 6][(raw[:, 3] > 0) & (raw[:, 6] > 0)]
    logr = np.log(rev) if len(rev) else np.zeros(1)
    bias = [_logit(float((raw[:, 0] > 0).mean())), _logit(float((raw[:, 3] > 0).mean())),
            float(logr.mean()), float(np.log(max(logr.std(), 0.05))),
            _logit(float((raw[:, 5] > 0).mean())),
            _logit(float(churn.mean()) if len(churn) else 0.01)]
    with torch.no_grad():
        layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))


def train_net(net: BehaviorNet, train: PanelTensors, val: PanelTensors | None,
              cfg: PredictorConfig, progress: bool = True,
              init_bias: bool = True) -> TrainResult:
    """Fit ``net`` in place (best validation weights kept) and return the training record.

    ``init_bias=False`` continues from the net's current weights (Data as Demonstrator rounds).
    """
    import time

    device = resolve_device(cfg.device)
    if device.type == "cpu":
        warn_if_thread_dependent(torch.get_num_threads())
    gen = torch.Generator().manual_seed(cfg.seed + 7919 * cfg.member)
    if init_bias:
        init_output_bias(net, train)
    net.to(device)
    w_train = ipw_weights(train, cfg.ipw_clip) if cfg.ipw else train.valid.astype(np.float32)
    tb = Batch.from_tensors(train, w_train, device)
    vb = Batch.from_tensors(val, val.valid.astype(np.float32), device) \
        if val is not None and val.n_users else None
    steps = max(1, train.raw.shape[1])
    upb = max(1, cfg.batch_size // steps)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = TrainResult()
    best, best_state, bad, rows, secs = math.inf, None, 0, 0, 0.0
    bar = tqdm(range(1, cfg.epochs + 1), desc=f"train {cfg.family}", unit="epoch",
               disable=not progress, leave=False)
    for epoch in bar:
        net.train()
        t0 = time.perf_counter()
        order = torch.randperm(train.n_users, generator=gen).to(device)
        tot, n = 0.0, 0
        for s in range(0, train.n_users, upb):
            sub = tb.take(order[s:s + upb])
            loss, _ = batch_loss(net, sub)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_grad_norm_stable(list(net.parameters()), 5.0)
            opt.step()
            k = int(sub.valid.sum())
            tot += float(loss.detach()) * k
            n += k
        dt = time.perf_counter() - t0
        rows += n
        secs += dt
        rec: dict[str, float] = {"epoch": epoch, "train_loss": tot / max(n, 1), "seconds": dt}
        if vb is not None:
            vl, vterms = _evaluate(net, vb, upb)
            rec["val_loss"] = vl
            rec.update({f"val_{k}": v for k, v in vterms.items()})
        else:
            vl = rec["train_loss"]
        result.history.append(rec)
        bar.set_postfix(train=f"{rec['train_loss']:.4f}", val=f"{vl:.4f}")
        if vl < best - 1e-5:
            best, bad, result.best_epoch = vl, 0, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    result.rows_per_second = rows / secs if secs > 0 else 0.0
    return result
