"""The torch networks of the model families, all behind one causal interface.

Every network maps a user's raw rows to outputs for every action at every step, where step ``t``
reads only steps ``< t``::

    forward(raw (B, T, 7), action (B, T), static (B, S)) -> (B, T, A, 6)

and carries the same computation step by step (what the simulator uses)::

    state = init_state(static)            # before the user's first period
    out = readout(state)                  # (B, A, 6): outputs for the coming period
    state = step(state, raw_t, action_t)  # after observing period t

Output channels per action: visit logit, purchase logit, log-revenue mean, log-revenue log-std,
unsubscribe logit, churn logit. ``state`` is a tuple of tensors.

Families: ``logistic`` (linear on RFM + recent-period features), ``mlp`` (the same features),
``gru``/``lstm`` (the recurrent state summarises the whole history), ``transformer`` (attention
over the last ``history`` periods; its state is that window), ``markov`` (a table of smoothed
counts indexed by a discrete summary of the recent periods, see :mod:`predictors.models.markov`;
it is fitted in closed form, ``closed_form = True``, instead of by gradient descent).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from predictors.models.config import PredictorConfig
from predictors.models.reproducible import make_layer_norms_thread_stable

N_OUT = 6
N_RAW = 7
State = tuple[torch.Tensor, ...]


def encode_rows(raw: torch.Tensor, action: torch.Tensor, n_actions: int) -> torch.Tensor:
    """Row features ``(..., 7) -> (..., 7 + n_actions + 2)``: log1p counts/revenue, unsubscribe
    flag, action one-hot, unknown-action flag, present flag (1 for a real row)."""
    x = torch.log1p(raw.clamp(min=0))
    x = torch.cat([x[..., :5], (raw[..., 5:6] > 0).to(raw.dtype), x[..., 6:7]], dim=-1)
    onehot = nn.functional.one_hot(action.clamp(min=0), n_actions + 1)[..., :n_actions]
    onehot = onehot.to(raw.dtype) * (action >= 0).unsqueeze(-1).to(raw.dtype)
    unknown = (action < 0).unsqueeze(-1).to(raw.dtype)
    return torch.cat([x, onehot, unknown, torch.ones_like(unknown)], dim=-1)


def row_width(n_actions: int) -> int:
    """Width of :func:`encode_rows` output."""
    return N_RAW + n_actions + 2


def past_windows(enc: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, T, F) -> (B, T, k, F)``: at step t, rows t-k..t-1 (zeros before the first row)."""
    b, t, f = enc.shape
    padded = torch.cat([enc.new_zeros(b, k, f), enc], dim=1)
    return padded.unfold(1, k, 1)[:, :t].permute(0, 1, 3, 2)


class ActionHeads(nn.Module):
    """Representation ``(..., D)`` -> outputs for every action ``(..., A, 6)``.

    ``heads``: a shared linear head plus a per-action linear offset (zero at init, so every
    action starts at the pooled estimate and moves away only as far as its data says).
    ``embedding``: an action embedding concatenated to the representation, then a small MLP.
    """

    def __init__(self, in_dim: int, n_actions: int, conditioning: str, hidden: int) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.conditioning = conditioning
        if conditioning == "heads":
            self.shared = nn.Linear(in_dim, N_OUT)
            self.per_action = nn.Linear(in_dim, n_actions * N_OUT)
            nn.init.zeros_(self.per_action.weight)
            nn.init.zeros_(self.per_action.bias)
        else:
            self.embedding = nn.Embedding(n_actions, hidden)
            self.mlp = nn.Sequential(nn.Linear(in_dim + hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, N_OUT))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.conditioning == "heads":
            per = self.per_action(z).unflatten(-1, (self.n_actions, N_OUT))
            return self.shared(z).unsqueeze(-2) + per
        zz = z.unsqueeze(-2).expand(*z.shape[:-1], self.n_actions, z.shape[-1])
        e = self.embedding.weight.expand(*z.shape[:-1], *self.embedding.weight.shape)
        return self.mlp(torch.cat([zz, e], dim=-1))


class BehaviorNet(nn.Module):
    """Base class: row encoding, heads and the sequence <-> step contract.

    ``closed_form`` families are fitted by :meth:`fit_closed_form` (e.g. counting) instead of
    the gradient training loop.
    """

    closed_form: ClassVar[bool] = False

    def __init__(self, cfg: PredictorConfig, n_actions: int, n_static: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_actions = n_actions
        self.n_static = n_static
        self.n_row = row_width(n_actions)

    def encode(self, raw: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """See :func:`encode_rows`."""
        return encode_rows(raw, action, self.n_actions)

    def forward(self, raw: torch.Tensor, action: torch.Tensor,
                static: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def init_state(self, static: torch.Tensor) -> State:
        raise NotImplementedError

    def step(self, state: State, raw: torch.Tensor, action: torch.Tensor) -> State:
        raise NotImplementedError

    def readout(self, state: State) -> torch.Tensor:
        raise NotImplementedError

    def fit_closed_form(self, train: Any, val: Any, cfg: PredictorConfig, progress: bool = True,
                        none_index: int | None = None) -> Any:
        """Fit without gradients (only where ``closed_form``); returns a ``TrainResult``."""
        raise NotImplementedError(f"{type(self).__name__} is trained by gradient descent")


class FeatureNet(BehaviorNet):
    """``logistic`` / ``mlp``: RFM and recent-period features of the history.

    Features at step t: log1p of cumulative counts, revenue and sends of each action before t,
    log1p tenure, periods since the last visit and last purchase (with never-flags), the last
    ``history`` encoded rows, static features. State: (totals, tenure, last visit step, last
    purchase step, window of rows, static).
    """

    def __init__(self, cfg: PredictorConfig, n_actions: int, n_static: int) -> None:
        super().__init__(cfg, n_actions, n_static)
        k = cfg.history
        self.n_total = N_RAW + n_actions + 1
        n_feat = self.n_total + 5 + k * self.n_row + n_static
        self.norm = nn.LayerNorm(n_feat, elementwise_affine=False) if cfg.family == "mlp" \
            else nn.Identity()
        if cfg.family == "logistic":
            self.body: nn.Module = nn.Identity()
            self.heads = ActionHeads(n_feat, n_actions, "heads", cfg.hidden)
        else:
            layers: list[nn.Module] = []
            width = n_feat
            for _ in range(cfg.layers):
                layers += [nn.Linear(width, cfg.hidden), nn.ReLU()]
                width = cfg.hidden
            self.body = nn.Sequential(*layers)
            self.heads = ActionHeads(width, n_actions, cfg.conditioning, cfg.hidden)

    def _totals_row(self, raw: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(action + 1, self.n_actions + 1).to(raw.dtype)
        return torch.cat([raw, onehot], dim=-1)

    def _features(self, totals, tenure, last_visit, last_purchase, window, static):
        return self.from_inputs(self.inputs(totals, tenure, last_visit, last_purchase, window,
                                            static))

    def from_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs from the feature vector of :meth:`inputs` (the weight-dependent part)."""
        return self.heads(self.body(x))

    def inputs(self, totals, tenure, last_visit, last_purchase, window, static) -> torch.Tensor:
        """The (normalised, affine-free) feature vector of a state or history (no weights)."""
        since_v = torch.where(last_visit >= 0, tenure - last_visit, torch.zeros_like(tenure))
        since_p = torch.where(last_purchase >= 0, tenure - last_purchase,
                              torch.zeros_like(tenure))
        scal = torch.stack([torch.log1p(tenure), torch.log1p(since_v), torch.log1p(since_p),
                            (last_visit < 0).to(tenure.dtype),
                            (last_purchase < 0).to(tenure.dtype)], dim=-1)
        return self.norm(torch.cat([torch.log1p(totals.clamp(min=0)), scal, window.flatten(-2),
                                    static], -1))

    def forward(self, raw, action, static):
        b, t, _ = raw.shape
        x = self._totals_row(raw, action)
        totals = torch.cumsum(x, dim=1) - x
        idx = torch.arange(t, dtype=raw.dtype, device=raw.device).expand(b, t)
        neg = torch.full_like(idx, -1.0)

        def last_before(mask: torch.Tensor) -> torch.Tensor:
            incl = torch.cummax(torch.where(mask, idx, neg), dim=1).values
            return torch.cat([neg[:, :1], incl[:, :-1]], dim=1)

        window = past_windows(self.encode(raw, action), self.cfg.history)
        st = static.unsqueeze(1).expand(b, t, static.shape[-1])
        return self._features(totals, idx, last_before(raw[..., 0] > 0),
                              last_before(raw[..., 3] > 0), window, st)

    def init_state(self, static):
        b = static.shape[0]
        z = static.new_zeros(b)
        return (static.new_zeros(b, self.n_total), z, z - 1, z - 1,
                static.new_zeros(b, self.cfg.history, self.n_row), static)

    def step(self, state, raw, action):
        totals, tenure, lv, lp, window, static = state
        totals = totals + self._totals_row(raw, action)
        lv = torch.where(raw[:, 0] > 0, tenure, lv)
        lp = torch.where(raw[:, 3] > 0, tenure, lp)
        window = torch.cat([window[:, 1:], self.encode(raw, action).unsqueeze(1)], dim=1)
        return (totals, tenure + 1, lv, lp, window, static)

    def readout(self, state):
        return self._features(*state)


class RecurrentNet(BehaviorNet):
    """``gru`` / ``lstm``: the state after rows ``0..t-1`` predicts step t (with static
    features). The carried state is the recurrent state plus the static features."""

    def __init__(self, cfg: PredictorConfig, n_actions: int, n_static: int) -> None:
        super().__init__(cfg, n_actions, n_static)
        rnn = nn.GRU if cfg.family == "gru" else nn.LSTM
        self.rnn = rnn(self.n_row, cfg.hidden, num_layers=cfg.layers, batch_first=True)
        self.heads = ActionHeads(cfg.hidden + n_static, n_actions, cfg.conditioning, cfg.hidden)
        self.is_lstm = cfg.family == "lstm"

    def forward(self, raw, action, static):
        b, t, _ = raw.shape
        h = raw.new_zeros(b, 1, self.cfg.hidden)
        if t > 1:  # a one-period panel has no history to run the RNN over
            out, _ = self.rnn(self.encode(raw[:, :-1], action[:, :-1]))
            h = torch.cat([h, out], dim=1)
        st = static.unsqueeze(1).expand(b, t, static.shape[-1])
        return self.heads(torch.cat([h, st], dim=-1))

    def init_state(self, static):
        h = static.new_zeros(self.cfg.layers, static.shape[0], self.cfg.hidden)
        return (h, torch.zeros_like(h), static) if self.is_lstm else (h, static)

    def step(self, state, raw, action):
        x = self.encode(raw, action).unsqueeze(1)
        if self.is_lstm:
            h, c, static = state
            _, (h, c) = self.rnn(x, (h, c))
            return (h, c, static)
        h, static = state
        _, h = self.rnn(x, h)
        return (h, static)

    def readout(self, state):
        return self.heads(torch.cat([state[0][-1], state[-1]], dim=-1))


class TransformerNet(BehaviorNet):
    """``transformer``: self-attention over the last ``history`` rows plus a query token.

    Each slot of the window has a learned position embedding (slot ``history - 1`` is the most
    recent period); padding slots are masked. The state is the window itself.
    """

    def __init__(self, cfg: PredictorConfig, n_actions: int, n_static: int) -> None:
        super().__init__(cfg, n_actions, n_static)
        h = cfg.hidden
        self.inp = nn.Linear(self.n_row, h)
        self.pos = nn.Parameter(torch.zeros(cfg.history + 1, h))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(h, nhead=4 if h % 4 == 0 else 1, dim_feedforward=2 * h,
                                           dropout=0.0, batch_first=True)
        self.encoder = make_layer_norms_thread_stable(
            nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False))
        self.heads = ActionHeads(h + n_static, n_actions, cfg.conditioning, h)

    def _attend(self, window: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        n = window.shape[0]
        tokens = torch.cat([self.inp(window), window.new_zeros(n, 1, self.cfg.hidden)], dim=1)
        tokens = tokens + self.pos
        pad = torch.cat([window[..., -1] <= 0, window.new_zeros(n, 1, dtype=torch.bool)], dim=1)
        z = self.encoder(tokens, src_key_padding_mask=pad)[:, -1]
        return self.heads(torch.cat([z, static], dim=-1))

    def forward(self, raw, action, static):
        b, t, _ = raw.shape
        w = past_windows(self.encode(raw, action), self.cfg.history)
        st = static.unsqueeze(1).expand(b, t, static.shape[-1])
        out = self._attend(w.reshape(b * t, *w.shape[2:]), st.reshape(b * t, -1))
        return out.reshape(b, t, self.n_actions, N_OUT)

    def init_state(self, static):
        return (static.new_zeros(static.shape[0], self.cfg.history, self.n_row), static)

    def step(self, state, raw, action):
        window, static = state
        return (torch.cat([window[:, 1:], self.encode(raw, action).unsqueeze(1)], 1), static)

    def readout(self, state):
        return self._attend(*state)


def make_net(cfg: PredictorConfig, n_actions: int, n_static: int) -> BehaviorNet:
    """Build the network of ``cfg.family``."""
    if cfg.family == "markov":
        from predictors.models.markov import MarkovNet  # imports this module

        return MarkovNet(cfg, n_actions, n_static)
    if cfg.family in ("logistic", "mlp"):
        return FeatureNet(cfg, n_actions, n_static)
    if cfg.family in ("gru", "lstm"):
        return RecurrentNet(cfg, n_actions, n_static)
    return TransformerNet(cfg, n_actions, n_static)
