"""Data as Demonstrator: training on the model's own drifted histories.

A predictor fitted by one-step likelihood only ever reads TRUE histories, but in the simulator it
reads the histories it generated itself, and small one-step biases compound over a rollout.
Data as Demonstrator (Venkatraman, Hebert & Bagnell, AAAI 2015) rolls the fitted model forward on
the training users under their logged actions, pairs each drifted history with the TRUE outcome
the log recorded after it, and continues training on the union of the true and the drifted
rows. The model thus learns to correct the states its own rollouts reach.

A drifted copy of a panel (:func:`drifted_copy`): each user gets a start step ``s`` drawn
uniformly from their history; rows before ``s`` are the logged ones, from ``s`` on every row
the model reads is drawn from the model itself under the logged action, the way the simulator
draws it (visit, purchase given a visit, log-normal revenue capped at twice the largest logged
period, unsubscribe; views, carts and favs Poisson with the panel's mean given visited and
purchased). The loss is taken only on the steps after ``s`` (the earlier ones duplicate the
true rows), and every label stays the logged one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from predictors.models.config import PredictorConfig
from predictors.models.families import BehaviorNet
from predictors.models.sequence import PanelTensors
from predictors.models.train import train_net


def activity_means(data: PanelTensors) -> np.ndarray:
    """``(2, 2, 3)`` mean views, carts, favs of the valid rows given (visited, purchased)."""
    raw = data.raw[data.valid]
    v, p = (raw[:, 0] > 0).astype(int), (raw[:, 3] > 0).astype(int)
    out = np.zeros((2, 2, 3))
    for i in range(2):
        for j in range(2):
            m = (v == i) & (p == j)
            if m.any():
                out[i, j] = raw[m][:, [1, 2, 4]].mean(axis=0)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def sample_rows(out: np.ndarray, action: np.ndarray, means: np.ndarray, revenue_cap: float,
                activity: str, rng: np.random.Generator) -> np.ndarray:
    """Draw one raw row ``(n, 7)`` per user from network outputs ``(n, A, 6)`` under ``action``.

    The draws follow the simulator's: a purchase given a visit with probability
    ``p_purchase / p_visit`` (or directly when the data has no visits, ``activity ==
    "purchase"``), revenue log-normal and capped, views/carts/favs Poisson.
    """
    n = len(action)
    o = out[np.arange(n), np.clip(action, 0, None)]
    pv, pp, pu = _sigmoid(o[:, 0]), _sigmoid(o[:, 1]), _sigmoid(o[:, 4])
    u_visit, u_buy, u_unsub = rng.random(n), rng.random(n), rng.random(n)
    if activity == "purchase":
        visit = np.zeros(n, dtype=bool)
        purchase = u_buy < pp
    else:
        visit = u_visit < pv
        purchase = visit & (u_buy < np.minimum(1.0, pp / np.maximum(pv, 1e-12)))
    logr = o[:, 2] + np.exp(np.clip(o[:, 3], -5, 5)) * rng.standard_normal(n)
    revenue = np.where(purchase, np.minimum(np.exp(np.minimum(logr, 50.0)), revenue_cap), 0.0)
    extra = rng.poisson(means[visit.astype(int), purchase.astype(int)]).astype(np.float32)
    return np.stack([visit.astype(np.float32), extra[:, 0], extra[:, 1],
                     purchase.astype(np.float32), extra[:, 2],
                     (u_unsub < pu).astype(np.float32), revenue.astype(np.float32)], axis=1)


def drifted_copy(net: BehaviorNet, data: PanelTensors, rng: np.random.Generator,
                 means: np.ndarray, revenue_cap: float, activity: str = "visit",
                 users_per_batch: int = 4096) -> PanelTensors:
    """A copy of ``data`` whose inputs from a random start step on are the model's own draws.

    Returns:
        :class:`PanelTensors` with ``raw`` the drifted inputs, ``target`` the logged rows (the
        labels) and ``loss_mask`` True on the steps after each user's start step.
    """
    n_users, n_steps = data.valid.shape
    length = data.valid.sum(axis=1)
    start = np.floor(rng.random(n_users) * np.maximum(length - 1, 1)).astype(np.int64)
    raw_in = data.raw.copy()
    device = next(iter(net.parameters())).device
    was_training = net.training
    net.eval()
    with torch.no_grad():
        for s in range(0, n_users, users_per_batch):
            sl = slice(s, min(s + users_per_batch, n_users))
            state = net.init_state(torch.as_tensor(data.static[sl]).to(device))
            for t in range(n_steps):
                drift = data.valid[sl, t] & (t >= start[sl]) & (data.loss_action[sl, t] >= 0)
                if drift.any():
                    out = net.readout(state).cpu().numpy().astype(np.float64)
                    rows = sample_rows(out, data.loss_action[sl, t], means, revenue_cap,
                                       activity, rng)
                    raw_in[sl, t][drift] = rows[drift]
                state = net.step(state, torch.as_tensor(raw_in[sl, t]).to(device),
                                 torch.as_tensor(data.action[sl, t]).to(device))
    net.train(was_training)
    mask = data.valid & (np.arange(n_steps)[None, :] > start[:, None])
    return replace(data, raw=raw_in, target=data.target_raw, loss_mask=mask)


def concat_tensors(parts: list[PanelTensors]) -> PanelTensors:
    """Stack panels of users along the user axis (time axis padded to the longest)."""
    t = max(p.valid.shape[1] for p in parts)

    def pad(a: np.ndarray, fill) -> np.ndarray:
        if a.shape[1] == t:
            return a
        width = [(0, 0), (0, t - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
        return np.pad(a, width, constant_values=fill)

    def cat(name: str, fill) -> np.ndarray:
        return np.concatenate([pad(getattr(p, name), fill) for p in parts])

    return PanelTensors(
        np.concatenate([p.user_ids for p in parts]),
        np.concatenate([p.first_period for p in parts]),
        cat("raw", 0.0), cat("action", -1), cat("loss_action", -1), cat("propensity", np.nan),
        cat("valid", False), cat("churn", np.nan), np.concatenate([p.static for p in parts]),
        target=np.concatenate([pad(p.target_raw, 0.0) for p in parts]),
        loss_mask=np.concatenate([pad(p.effective_mask, False) for p in parts]))


def dad_union(net: BehaviorNet, data: PanelTensors, base: PanelTensors, rounds_seed: int,
              activity: str) -> PanelTensors:
    """``data`` (the current union) plus one drifted copy of ``base`` rolled by ``net``."""
    rng = np.random.default_rng(rounds_seed)
    raw = base.raw[base.valid]
    top = float(raw[:, 6].max()) if len(raw) else 0.0
    cap = 2.0 * top if top > 0 else np.inf
    copy = drifted_copy(net, base, rng, activity_means(base), cap, activity)
    return concat_tensors([data, copy])


def dad_rounds(net: BehaviorNet, train: PanelTensors, val: PanelTensors, cfg: PredictorConfig,
               activity: str, progress: bool = False) -> list[dict[str, float]]:
    """``cfg.dad`` rounds: add a drifted copy of the training (and validation) users rolled by
    the current ``net``, continue training on the union; returns the rounds' epoch records."""
    seed = (cfg.seed + 7919 * cfg.member) * 1000 + 17
    union_train, union_val, history = train, val, []
    for r in range(cfg.dad):
        union_train = dad_union(net, union_train, train, seed + 2 * r, activity)
        if val.n_users:
            union_val = dad_union(net, union_val, val, seed + 2 * r + 1, activity)
        res = train_net(net, union_train, union_val, cfg, progress=progress, init_bias=False)
        history += [{**rec, "dad_round": r + 1} for rec in res.history]
    return history
