"""The ``markov`` family: next-period behavior from smoothed counts over a discrete state.

The user's history before period ``t`` is summarised by a small discrete state:

* the behavior level of each of the last ``markov_order`` periods: none, visited, carted,
  purchased (the highest reached), or ``before`` (no such period: before the user's first);
* periods since the last active period and since the last purchase, bucketed by
  ``markov_recency_edges`` (plus a ``never`` bucket);
* periods with a purchase so far, bucketed by ``markov_frequency_edges``;
* contacts (sent actions other than ``none``) in the last ``markov_contact_window`` periods,
  bucketed by ``markov_contact_edges``;
* whether the user ever unsubscribed.

For each state ``s`` and candidate action ``a`` every binary head is a Beta posterior mean
estimated from counts, shrunk hierarchically (backoff) towards coarser cells::

    p(s, a) = (y(s, a) + m * c(s, a)) / (n(s, a) + m),
    c(s, a) = sigmoid(base(s) + delta(g(s), a)),

where ``base(s)`` is the state's logit rate with the actions' offsets removed (its pooled rate
shrunk towards its group's), ``g`` is the coarse group of ``s`` (last level, contact bucket,
unsubscribed) and ``delta(g, a)`` is the action's logit effect in that group, observed against
the expected successes of the states it was sent to and shrunk towards the action's overall
effect (see :func:`shrink_binary`). A thin cell thus takes its level from its state and its
action effect from its group. Revenue given a purchase is log-normal: the mean and second moment
of log revenue are shrunk the same way. ``m`` (pseudo user-periods, ``markov_prior``) is picked
per head on the validation users from :data:`PRIOR_GRID` when set to ``0``. With
``markov_static`` (the default) every head also gets a per-action offset linear in the user's
static features (:mod:`predictors.models.markov_static`), kept only for the heads where it lowers
the validation loss, so an action's effect can differ between users in the same state.

The state is computed by one torch function for whole sequences (fitting, batch prediction) and
carried step by step for the simulator as tensors whose first axis is the batch: behavior levels
``(B, order)``, periods since activity ``(B,)`` and since purchase ``(B,)`` (0 = never), periods
with a purchase ``(B,)``, contacts of the last periods ``(B, window)`` and the unsubscribed flag
``(B,)`` and the static features ``(B, S)``. The readout is a table lookup (plus the static
offset), so the family plugs into
:class:`~predictors.models.BehaviorPredictor` (and the simulator) like the neural ones; the
tables and raw counts are its saved buffers.

Reference: the first-order Markov chain of customer behavior as in Pfeifer & Carraway (2000),
"Modeling customer relationships as Markov chains", J. Interactive Marketing 14(2).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from predictors.models.config import PredictorConfig, resolve_device
from predictors.models.families import BehaviorNet, State
from predictors.models.markov_static import MAX_ROWS, fit_static
from predictors.models.sequence import PanelTensors
from predictors.models.shrinkage import P_EPS, logit, shrink_binary, shrink_lognormal, sigmoid
from predictors.models.train import LOSS_TERMS, TrainResult, ipw_weights

#: Behavior level codes (the highest of the period) and the padding before a user's first period.
LEVELS = ("none", "visited", "carted", "purchased", "before")
BEFORE = 4
#: Columns of the count table ``(n_states, n_actions, 9)`` (weighted sums).
COUNT_COLUMNS = ("n", "visit", "purchase", "unsubscribe", "n_churn", "churn", "n_revenue",
                 "log_revenue", "log_revenue_sq")
#: Prior strengths tried per head on the validation users when ``markov_prior == 0``.
PRIOR_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
_BINARY = {"visit": (0, 1), "purchase": (0, 2), "unsubscribe": (0, 3), "churn": (4, 5)}
_CHANNEL = {"visit": 0, "purchase": 1, "unsubscribe": 4, "churn": 5}


def behavior_level(raw: torch.Tensor) -> torch.Tensor:
    """``(..., 7) -> (...)`` int64 level: 0 none, 1 visited, 2 carted, 3 purchased."""
    level = (raw[..., 0] > 0).long()
    level = torch.where(raw[..., 2] > 0, torch.full_like(level, 2), level)
    return torch.where(raw[..., 3] > 0, torch.full_like(level, 3), level)


def count_losses(counts: np.ndarray, table: np.ndarray) -> dict[str, float]:
    """Mean loss per term (as in training: BCE per binary head, Gaussian NLL of log revenue)
    of ``table`` ``(S, A, 6)`` on the rows summarised by ``counts`` ``(S, A, 9)``."""
    out: dict[str, float] = {}
    for head, (cn, cy) in _BINARY.items():
        n, y = counts[..., cn], counts[..., cy]
        p = sigmoid(table[..., _CHANNEL[head]].astype(np.float64))
        p = np.clip(p, P_EPS, 1 - P_EPS)
        tot = n.sum()
        out[head] = float(-(y * np.log(p) + (n - y) * np.log1p(-p)).sum() / tot) if tot else 0.0
    n, s1, s2 = counts[..., 6], counts[..., 7], counts[..., 8]
    mu, log_sigma = table[..., 2].astype(np.float64), table[..., 3].astype(np.float64)
    sq = s2 - 2 * mu * s1 + n * mu ** 2
    nll = n * (log_sigma + 0.5 * np.log(2 * np.pi)) + 0.5 * sq * np.exp(-2 * log_sigma)
    out["revenue"] = float(nll.sum() / n.sum()) if n.sum() else 0.0
    return {k: out[k] for k in LOSS_TERMS}


class MarkovNet(BehaviorNet):
    """Count tables indexed by (discrete state, action); see the module docstring.

    Buffers (saved): ``none_index`` (the catalog's ``none``, -1 if absent), ``counts``
    ``(S, A, 9)`` float64 weighted counts (:data:`COUNT_COLUMNS`), ``prior`` ``(5,)`` the prior
    strength of each loss term (:data:`~predictors.models.train.LOSS_TERMS` order), ``table``
    ``(S, A, 6)`` the output channels of every cell.
    """

    closed_form = True

    def __init__(self, cfg: PredictorConfig, n_actions: int, n_static: int) -> None:
        super().__init__(cfg, n_actions, n_static)
        self.order = cfg.markov_order
        self.window = cfg.markov_contact_window
        self.recency_edges = cfg.markov_recency_edges
        self.contact_edges = cfg.markov_contact_edges
        self.register_buffer("recency_edge", torch.tensor(self.recency_edges), persistent=False)
        self.register_buffer("contact_edge", torch.tensor(self.contact_edges), persistent=False)
        self.register_buffer("frequency_edge", torch.tensor(cfg.markov_frequency_edges),
                             persistent=False)
        self.register_buffer("level_weight", 5 ** torch.arange(self.order - 1, -1, -1),
                             persistent=False)
        self.n_recency = len(cfg.markov_recency_edges) + 2
        self.n_contact = len(cfg.markov_contact_edges) + 1
        self.n_frequency = len(cfg.markov_frequency_edges) + 1
        self.shape = (5 ** self.order, self.n_recency, self.n_recency, self.n_frequency,
                      self.n_contact, 2)
        self.n_states = int(np.prod(self.shape))
        self.register_buffer("none_index", torch.tensor(-1))
        self.register_buffer("counts", torch.zeros(self.n_states, n_actions, len(COUNT_COLUMNS),
                                                   dtype=torch.float64))
        self.register_buffer("prior", torch.zeros(len(LOSS_TERMS), dtype=torch.float64))
        self.register_buffer("table", torch.zeros(self.n_states, n_actions, 6))
        self.use_static = bool(cfg.markov_static) and n_static > 0
        self.register_buffer("static_coef", torch.zeros(n_static + 1, n_actions, 6))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before static offsets existed hold no ``static_coef``: zeros
        # (no offset) is exactly the model they saved.
        state_dict.setdefault(prefix + "static_coef", torch.zeros_like(self.static_coef))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _offset(self, static: torch.Tensor) -> torch.Tensor:
        """``static (..., S) -> (..., A, 6)``: the static offset of every action's outputs."""
        coef = self.static_coef
        return coef[0] + torch.einsum("...s,sac->...ac", static.to(coef.dtype), coef[1:])

    # ------------------------------------------------------------------ the discrete state
    def groups(self) -> tuple[np.ndarray, int]:
        """Coarse group of every state ``(S,)`` (last level x contact bucket x unsubscribed)."""
        lv, _, _, _, con, uns = np.unravel_index(np.arange(self.n_states), self.shape)
        return ((lv % 5) * self.n_contact + con) * 2 + uns, 5 * self.n_contact * 2

    # Buckets by comparisons, not gathers: on a busy CPU torch's indexing kernels wait on the
    # thread pool (milliseconds per call) while element-wise ops stay in microseconds.
    def _recency(self, since: torch.Tensor) -> torch.Tensor:
        b = (since.unsqueeze(-1) >= self.recency_edge).sum(-1)
        return torch.where(since > 0, b, torch.full_like(b, self.n_recency - 1))

    def _index(self, levels, since_active, since_buy, purchases, contacts, unsub):
        code = (levels * self.level_weight).sum(-1)
        freq = (purchases.unsqueeze(-1) >= self.frequency_edge).sum(-1)
        con = (contacts.unsqueeze(-1) >= self.contact_edge).sum(-1)
        idx = (code * self.n_recency + self._recency(since_active)) * self.n_recency
        idx = (idx + self._recency(since_buy)) * self.n_frequency + freq
        idx = (idx * self.n_contact + con) * 2
        return idx + unsub.long()

    def _contact(self, action: torch.Tensor) -> torch.Tensor:
        return ((action >= 0) & (action != self.none_index)).long()

    def state_index(self, raw: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``raw (B, T, 7)``, ``action (B, T)`` -> ``(B, T)`` state index before each step."""
        b, t, _ = raw.shape
        level = behavior_level(raw)
        padded = torch.cat([level.new_full((b, self.order), BEFORE), level], dim=1)
        levels = padded.unfold(1, self.order, 1)[:, :t]
        step = torch.arange(t, device=raw.device).expand(b, t)
        neg = torch.full_like(step, -1)

        def since(mask: torch.Tensor) -> torch.Tensor:
            last = torch.cummax(torch.where(mask, step, neg), dim=1).values
            last = torch.cat([neg[:, :1], last[:, :-1]], dim=1)
            return torch.where(last >= 0, step - last, torch.zeros_like(step))

        zero = level.new_zeros(b, 1)
        cum = torch.cat([zero, torch.cumsum(self._contact(action), dim=1)], dim=1)
        lo = (torch.arange(t, device=raw.device) - self.window).clamp(min=0)
        contacts = cum[:, :t] - cum[:, lo]
        unsub = torch.cat([zero, torch.cumsum((raw[..., 5] > 0).long(), dim=1)], 1)[:, :t] > 0
        bought = torch.cat([zero, torch.cumsum((level == 3).long(), dim=1)], 1)[:, :t]
        return self._index(levels, since(level > 0), since(level == 3), bought, contacts, unsub)

    # ------------------------------------------------------------------ BehaviorNet contract
    def _lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """``table[idx]``: ``idx (...)`` -> ``(..., A, 6)`` (numpy's take on the CPU)."""
        if self.table.device.type == "cpu":
            return torch.from_numpy(self.table.numpy().take(idx.numpy(), axis=0))
        return self.table[idx]

    def forward(self, raw, action, static):
        out = self._lookup(self.state_index(raw, action))
        return out + self._offset(static).unsqueeze(1) if self.use_static else out

    def init_state(self, static: torch.Tensor) -> State:
        b, dev = static.shape[0], static.device
        z = torch.zeros(b, dtype=torch.long, device=dev)
        return (torch.full((b, self.order), BEFORE, dtype=torch.long, device=dev), z, z, z,
                torch.zeros(b, self.window, dtype=torch.long, device=dev), z, static)

    def step(self, state, raw, action):
        levels, since_active, since_buy, bought, contacts, unsub, static = state
        level = behavior_level(raw)

        def advance(since: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
            return torch.where(event, torch.ones_like(since),
                               torch.where(since > 0, since + 1, since))

        return (torch.cat([levels[:, 1:], level[:, None]], dim=1),
                advance(since_active, level > 0), advance(since_buy, level == 3),
                bought + (level == 3).long(),
                torch.cat([contacts[:, 1:], self._contact(action)[:, None]], dim=1),
                unsub | (raw[:, 5] > 0).long(), static)

    def readout(self, state):
        levels, since_active, since_buy, bought, contacts, unsub, static = state
        out = self._lookup(self._index(levels, since_active, since_buy, bought,
                                       contacts.sum(-1), unsub))
        return out + self._offset(static) if self.use_static else out

    # ------------------------------------------------------------------ fitting
    def count(self, data: PanelTensors, weight: np.ndarray | None = None,
              chunk_rows: int = 2_000_000, progress: bool = False) -> np.ndarray:
        """Weighted counts ``(S, A, 9)`` (:data:`COUNT_COLUMNS`) of the labelled steps of
        ``data``; ``weight`` ``(U, T)`` per step (1 if None)."""
        s_a = self.n_states * self.n_actions
        out = np.zeros((len(COUNT_COLUMNS), s_a))
        steps = max(1, data.raw.shape[1])
        upb = max(1, chunk_rows // steps)
        starts = range(0, data.n_users, upb)
        for s in tqdm(starts, desc="count markov", unit="chunk", disable=not progress,
                      leave=False):
            sl = slice(s, s + upb)
            with torch.no_grad():
                idx = self.state_index(torch.as_tensor(data.raw[sl]),
                                       torch.as_tensor(data.action[sl])).numpy()
            act = data.loss_action[sl]
            keep = data.valid[sl] & (act >= 0)
            cell = idx[keep] * self.n_actions + act[keep]
            r = data.raw[sl][keep].astype(np.float64)
            w = np.ones(len(cell)) if weight is None else weight[sl][keep].astype(np.float64)
            churn = data.churn[sl][keep]
            has = np.isfinite(churn)
            buy = (r[:, 3] > 0) & (r[:, 6] > 0)
            logr = np.log(np.where(buy, r[:, 6], 1.0))
            cols = (w, w * (r[:, 0] > 0), w * (r[:, 3] > 0), w * (r[:, 5] > 0), w * has,
                    w * (has & (np.nan_to_num(churn) > 0)), w * buy, w * buy * logr,
                    w * buy * logr ** 2)
            for j, c in enumerate(cols):
                out[j] += np.bincount(cell, c, minlength=s_a)
        return out.T.reshape(self.n_states, self.n_actions, len(COUNT_COLUMNS))

    def static_rows(self, data: PanelTensors, weight: np.ndarray | None, max_rows: int,
                    seed: int) -> dict[str, np.ndarray]:
        """The labelled steps of ``data`` as rows for :func:`fit_static` (a seeded subset of
        whole users when there are more than ``max_rows`` steps)."""
        users = np.arange(data.n_users)
        if data.n_rows > max_rows:
            keep = max(1, int(data.n_users * max_rows / data.n_rows))
            users = np.sort(np.random.default_rng(seed).choice(data.n_users, keep, replace=False))
        d = data.subset(users)
        w = None if weight is None else weight[users]
        with torch.no_grad():
            idx = self.state_index(torch.as_tensor(d.raw), torch.as_tensor(d.action)).numpy()
        keep_rows = d.valid & (d.loss_action >= 0)
        r = d.raw[keep_rows].astype(np.float64)
        churn = d.churn[keep_rows]
        buy = (r[:, 3] > 0) & (r[:, 6] > 0)
        return {"cell": idx[keep_rows], "action": d.loss_action[keep_rows],
                "static": np.broadcast_to(d.static[:, None, :], (*d.valid.shape,
                                                                 d.static.shape[1]))[keep_rows],
                "weight": np.ones(len(r)) if w is None else w[keep_rows].astype(np.float64),
                "visit": (r[:, 0] > 0).astype(float), "purchase": (r[:, 3] > 0).astype(float),
                "unsubscribe": (r[:, 5] > 0).astype(float),
                "has_churn": np.isfinite(churn), "churn": (np.nan_to_num(churn) > 0).astype(float),
                "buy": buy, "log_revenue": np.log(np.where(buy, r[:, 6], 1.0))}

    def tables(self, counts: np.ndarray, prior: dict[str, float]) -> np.ndarray:
        """Output channels ``(S, A, 6)`` from ``counts`` with one prior strength per term."""
        group, n_groups = self.groups()
        out = np.zeros((self.n_states, self.n_actions, 6))
        for head, (cn, cy) in _BINARY.items():
            p = shrink_binary(counts[..., cn], counts[..., cy], group, n_groups, prior[head])
            out[..., _CHANNEL[head]] = logit(p)
        mu, var = shrink_lognormal(counts[..., 6], counts[..., 7], counts[..., 8], group,
                                   n_groups, prior["revenue"])
        out[..., 2], out[..., 3] = mu, 0.5 * np.log(var)
        return out

    def fit_closed_form(self, train: PanelTensors, val: PanelTensors | None,
                        cfg: PredictorConfig, progress: bool = True,
                        none_index: int | None = None) -> TrainResult:
        """Count the training users; pick each head's prior on ``val`` when ``markov_prior``
        is 0 (a fixed 10 without validation users); fill the tables."""
        t0 = time.perf_counter()
        self.to("cpu")
        self.none_index.fill_(-1 if none_index is None else none_index)
        weight = ipw_weights(train, cfg.ipw_clip) if cfg.ipw else None
        counts = self.count(train, weight, progress=progress)
        val_counts = self.count(val) if val is not None and val.n_users > 0 else None
        if cfg.markov_prior > 0 or val_counts is None:
            prior = dict.fromkeys(LOSS_TERMS, cfg.markov_prior or 10.0)
        else:
            scores = [count_losses(val_counts, self.tables(counts, dict.fromkeys(LOSS_TERMS, m)))
                      for m in PRIOR_GRID]
            prior = {k: PRIOR_GRID[int(np.argmin([s[k] for s in scores]))] for k in LOSS_TERMS}
        table = self.tables(counts, prior)
        self.counts.copy_(torch.as_tensor(counts))
        self.prior.copy_(torch.tensor([prior[k] for k in LOSS_TERMS], dtype=torch.float64))
        self.table.copy_(torch.as_tensor(table, dtype=torch.float32))
        static_l2: dict[str, float] = {}
        if self.use_static:
            has_val = val is not None and val.n_users > 0
            coef, static_l2 = fit_static(
                self.static_rows(train, weight, MAX_ROWS, cfg.seed),
                self.static_rows(val, None, MAX_ROWS, cfg.seed + 1) if has_val else None,
                table.astype(np.float32).astype(np.float64), self.n_actions,
                cfg.markov_static_l2, cfg.seed)
            self.static_coef.copy_(torch.as_tensor(coef, dtype=torch.float32))
        dt = time.perf_counter() - t0
        train_terms = count_losses(counts, table)
        rec: dict[str, float] = {"epoch": 1, "train_loss": sum(train_terms.values()),
                                 "seconds": dt}
        if val_counts is not None:
            vterms = count_losses(val_counts, table)
            rec["val_loss"] = sum(vterms.values())
            rec.update({f"val_{k}": v for k, v in vterms.items()})
        rec.update({f"prior_{k}": v for k, v in prior.items()})
        rec.update({f"static_l2_{k}": v for k, v in static_l2.items()})
        self.to(resolve_device(cfg.device))
        return TrainResult(history=[rec], best_epoch=1,
                           rows_per_second=train.n_rows / dt if dt > 0 else 0.0)

    # ------------------------------------------------------------------ interpretation
    def state_names(self) -> pd.DataFrame:
        """One row per state: ``levels`` (oldest first), ``since_active``, ``since_purchase``,
        ``purchases``, ``contacts`` bucket labels and ``unsubscribed``."""
        lv, ra, rp, fr, con, uns = np.unravel_index(np.arange(self.n_states), self.shape)
        digits = [(lv // 5 ** j) % 5 for j in range(self.order - 1, -1, -1)]
        levels = ["/".join(LEVELS[d[i]] for d in digits) for i in range(self.n_states)]
        rec = _bucket_labels(list(self.recency_edges)) + ["never"]
        cl = _bucket_labels(list(self.contact_edges), zero=True)
        fl = _bucket_labels(list(self.frequency_edge.tolist()), zero=True)
        return pd.DataFrame({"levels": levels, "since_active": np.array(rec)[ra],
                             "since_purchase": np.array(rec)[rp],
                             "purchases": np.array(fl)[fr], "contacts": np.array(cl)[con],
                             "unsubscribed": uns.astype(bool)})


def _bucket_labels(edges: list[int], zero: bool = False) -> list[str]:
    """Labels of the buckets ``[.., e0), [e0, e1), .., [e_last, inf)``."""
    lo = [0 if zero else 1, *edges]
    hi = [*edges, None]
    return [f"{a}+" if b is None else (str(a) if b == a + 1 else f"{a}-{b - 1}")
            for a, b in zip(lo, hi, strict=True)]


def markov_table(predictor: Any, min_count: float = 1.0) -> pd.DataFrame:
    """The fitted cells of a ``markov`` predictor as a readable table.

    Args:
        predictor: A fitted :class:`~predictors.models.BehaviorPredictor` of family ``markov``.
        min_count: Keep cells with at least this (weighted) number of training user-periods.

    Returns:
        One row per (state, action) cell: the state columns of :meth:`MarkovNet.state_names`,
        ``action``, ``n``, ``p_visit``, ``p_purchase``, ``revenue_mu``, ``revenue_sigma``,
        ``p_unsubscribe``, ``p_churn``, sorted by ``n`` descending.

    Example:
        >>> from predictors.models import BehaviorPredictor, PredictorConfig, toy_panel
        >>> panel, users = toy_panel(n_users=50, n_periods=5, seed=0)
        >>> pred = BehaviorPredictor(PredictorConfig(family="markov", device="cpu")).fit(
        ...     panel, ["none", "a1"], users, progress=False)
        >>> list(markov_table(pred).columns[:3])
        ['levels', 'since_active', 'since_purchase']
    """
    net = getattr(predictor, "net_", None)
    if not isinstance(net, MarkovNet):
        raise TypeError("`predictor` must be a fitted BehaviorPredictor of family 'markov'")
    names = net.state_names()
    counts = net.counts.cpu().numpy()[..., 0]
    table = net.table.cpu().numpy().astype(np.float64)
    s, a = np.nonzero(counts >= min_count)
    out = names.iloc[s].reset_index(drop=True)
    out["action"] = np.asarray(predictor.action_names_)[a]
    out["n"] = counts[s, a]
    cells = table[s, a]
    for col, ch in (("p_visit", 0), ("p_purchase", 1), ("p_unsubscribe", 4), ("p_churn", 5)):
        out[col] = sigmoid(cells[:, ch])
    out["revenue_mu"], out["revenue_sigma"] = cells[:, 2], np.exp(cells[:, 3])
    return out.sort_values("n", ascending=False, kind="stable").reset_index(drop=True)
