"""K ensemble members of one family run as one network: stacked weights, one pass per period.

Two kinds of members are stacked (the others are stepped member by member by
:class:`~predictors.models.ensemble.PredictorEnsemble`):

* the feature families (``logistic``, ``mlp``): their carried state (totals, recency, the window
  of recent rows, static features) is a function of the observed history only, not of the
  weights, so the K members share ONE state: a step advances it once, the feature vector is
  assembled once, and the first layer of all K members is one matrix product on it;
* ``gru``: each member keeps its own hidden state, stacked as ``(K, layers, n, hidden)`` next to
  one shared copy of the static features. The row encoding is computed once per period and every
  member's cell is updated (any member may be drawn in the next period, so every member's state
  moves on with the observed outcome, as if each were stepped alone).

The output heads (``heads`` conditioning: a shared linear map plus a per-action offset) are
folded into one linear map per member, and every GRU bias into the input product. Where the
members' spread is not needed, each row runs only the output layers of the member drawn for it
(:meth:`StackedMembers.picked_outputs`; for the feature families that is the whole network).
Rows go in chunks of :data:`ROW_CHUNK`, so that the intermediates stay in the core's cache
(measured faster than whole-batch passes at simulator batch sizes, N = 4096, one thread). The
outputs equal those of the members' own modules up to float rounding, and do not depend on
the thread count.
"""

from __future__ import annotations

import torch
from torch import nn

from predictors.models.families import (
    N_OUT,
    ActionHeads,
    BehaviorNet,
    FeatureNet,
    RecurrentNet,
    State,
)

#: Rows per chunk of the stacked passes (fits one core's L2 cache at hidden = 64, K = 5).
ROW_CHUNK = 1024


def _chunks(n: int) -> list[slice]:
    return [slice(s, min(s + ROW_CHUNK, n)) for s in range(0, n, ROW_CHUNK)]


def _folded_heads(heads: ActionHeads) -> tuple[torch.Tensor, torch.Tensor]:
    """``shared(z)[..., None, :] + per_action(z)`` as one linear map: weight ``(A*6, D)``,
    bias ``(A*6,)`` (output ``a * 6 + c`` is channel c of action a)."""
    a = heads.n_actions
    w = heads.per_action.weight.view(a, N_OUT, -1) + heads.shared.weight.unsqueeze(0)
    b = heads.per_action.bias.view(a, N_OUT) + heads.shared.bias
    return w.reshape(a * N_OUT, -1).detach().contiguous(), b.reshape(-1).detach()


def by_row(out: torch.Tensor, n_actions: int) -> torch.Tensor:
    """Outputs by output ``(K, A*6, n)`` -> a ``(K, n, A, 6)`` view."""
    return out.transpose(1, 2).unflatten(-1, (n_actions, N_OUT))


def _plain_heads(net: BehaviorNet) -> bool:
    return getattr(net, "heads", None) is not None and net.heads.conditioning == "heads"


class StackedMembers:
    """Base class: K networks of the same shape behind the carried-state interface.

    :meth:`outputs` gives every member's raw outputs for the coming period laid out by output,
    ``(K, A*6, n)`` (output ``a * 6 + c`` is channel c of action a): the stacked passes compute
    ``W @ z.T`` rather than ``z @ W.T``, which with few outputs (A * 6 = 30) and many rows is
    about twice as fast on one thread, and a draw of one member per row is then a gather along
    contiguous rows. :meth:`readouts` is the same as ``(K, n, A, 6)``. :meth:`picked_outputs`
    runs, for each row, only the member drawn for it (when the members' spread is not needed).
    """

    def __init__(self, nets: list[BehaviorNet]) -> None:
        self.nets = nets
        self.n_members = len(nets)
        self.n_actions = nets[0].n_actions

    def init_state(self, static: torch.Tensor) -> State:
        raise NotImplementedError

    def step(self, state: State, raw: torch.Tensor, action: torch.Tensor) -> State:
        raise NotImplementedError

    def outputs(self, state: State) -> torch.Tensor:
        raise NotImplementedError

    def readouts(self, state: State) -> torch.Tensor:
        """Every member's outputs for the coming period, ``(K, n, A, 6)``."""
        return by_row(self.outputs(state), self.n_actions)

    def n_rows(self, state: State) -> int:
        """The batch size of ``state``."""
        raise NotImplementedError

    def picked_outputs(self, state: State, pick: torch.Tensor) -> torch.Tensor:
        """Outputs by output ``(A*6, n)`` of member ``pick[i]`` (int64 ``(n,)``) for row i."""
        out = self.outputs(state)
        return torch.gather(out, 0, pick.expand(1, *out.shape[1:]))[0]

    def _groups(self, pick: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """``(member, rows)`` for every drawn member, rows ascending, in chunks."""
        out = []
        for m in range(self.n_members):  # (a stable argsort of `pick` is ~20x slower)
            rows = torch.nonzero(pick == m).squeeze(1)
            out += [(m, rows[part]) for part in _chunks(len(rows))]
        return out


class FeatureMembers(StackedMembers):
    """K ``logistic`` / ``mlp`` networks on one shared state and feature vector."""

    def __init__(self, nets: list[BehaviorNet]) -> None:
        super().__init__(nets)
        self.stacked = all(_plain_heads(n) for n in nets)
        if not self.stacked:  # embedding-conditioned heads: K calls on the shared features
            return
        linears = [[m for m in n.body.modules() if isinstance(m, nn.Linear)] for n in nets]
        heads = [_folded_heads(n.heads) for n in nets]
        self.width = nets[0].cfg.hidden
        if linears[0]:  # mlp: every Linear of the body is followed by a ReLU
            self.w0 = torch.cat([ls[0].weight for ls in linears]).detach()  # (K*hidden, F)
            self.b0 = torch.cat([ls[0].bias for ls in linears]).detach()
            self.deeper = [[(m.weight.detach(), m.bias.detach()) for m in ls[1:]]
                           for ls in linears]
            self.wh = [w for w, _ in heads]
            self.bh = [b for _, b in heads]
        else:  # logistic: the heads read the features directly
            self.w0 = torch.cat([w for w, _ in heads])  # (K*A*6, F)
            self.b0 = torch.cat([b for _, b in heads])
            self.deeper = None

    @staticmethod
    def supports(nets: list[BehaviorNet]) -> bool:
        """Whether the members can share their state: the same feature family and shapes."""
        first = nets[0]
        return isinstance(first, FeatureNet) and all(
            type(n) is type(first) and n.cfg.family == first.cfg.family
            and n.n_actions == first.n_actions and n.n_static == first.n_static
            and n.cfg.history == first.cfg.history and n.cfg.hidden == first.cfg.hidden
            and n.cfg.layers == first.cfg.layers for n in nets)

    def init_state(self, static: torch.Tensor) -> State:
        """The shared state before the first period."""
        return self.nets[0].init_state(static)

    def step(self, state: State, raw: torch.Tensor, action: torch.Tensor) -> State:
        """Advance the shared state by one observed period."""
        return self.nets[0].step(state, raw, action)

    def n_rows(self, state: State) -> int:
        """The batch size of ``state``."""
        return state[0].shape[0]

    def picked_outputs(self, state: State, pick: torch.Tensor) -> torch.Tensor:
        """Outputs by output ``(A*6, n)`` of member ``pick[i]`` for row i: each member's
        layers run on its own rows only."""
        if not self.stacked:
            return super().picked_outputs(state, pick)
        x = self.nets[0].inputs(*state)
        a6 = self.n_actions * N_OUT
        out = x.new_empty(a6, x.shape[0])
        for m, rows in self._groups(pick):
            xm = x.index_select(0, rows).T
            if self.deeper is None:
                block = slice(m * a6, (m + 1) * a6)
                out.index_copy_(1, rows, torch.addmm(self.b0[block].unsqueeze(1),
                                                     self.w0[block], xm))
                continue
            block = slice(m * self.width, (m + 1) * self.width)
            z = torch.addmm(self.b0[block].unsqueeze(1), self.w0[block], xm).relu_()
            for w, b in self.deeper[m]:
                z = torch.addmm(b.unsqueeze(1), w, z).relu_()
            out.index_copy_(1, rows, torch.addmm(self.bh[m].unsqueeze(1), self.wh[m], z))
        return out

    def outputs(self, state: State) -> torch.Tensor:
        """Every member's outputs for the coming period by output, ``(K, A*6, n)``."""
        x = self.nets[0].inputs(*state)  # the features are the same for every member
        if not self.stacked:
            return torch.stack([net.from_inputs(x) for net in self.nets]).flatten(2).mT
        k, n = self.n_members, x.shape[0]
        out = x.new_empty(k, self.n_actions * N_OUT, n)
        for rows in _chunks(n):
            y = torch.addmm(self.b0.unsqueeze(1), self.w0, x[rows].T)
            if self.deeper is None:
                out[:, :, rows] = y.view(k, -1, y.shape[1])
                continue
            y = y.relu_()
            for m in range(k):
                z = y[m * self.width:(m + 1) * self.width]
                for w, b in self.deeper[m]:
                    z = torch.addmm(b.unsqueeze(1), w, z).relu_()
                torch.addmm(self.bh[m].unsqueeze(1), self.wh[m], z, out=out[m, :, rows])
        return out


class GRUMembers(StackedMembers):
    """K ``gru`` networks: stacked hidden states ``(K, layers, n, hidden)``, one static copy.

    Per member and layer (PyTorch's GRU): ``r, z = sigmoid(W_i{r,z} x + W_h{r,z} h + b)``,
    ``c = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = c + z * (h - c)``. One buffer of
    width 4H holds ``[W_in x + b_in, r and z before the sigmoid, W_hn h + b_hn]``: the input
    product fills it (with every bias; on layer 0 through a constant-1 input column) and the
    hidden product is accumulated onto its last 3H columns in place.
    """

    def __init__(self, nets: list[BehaviorNet]) -> None:
        super().__init__(nets)
        first = nets[0]
        self.hidden, self.layers = first.cfg.hidden, first.cfg.layers
        hid = self.hidden
        #: [layer][member] input weights (4H, inputs (+1 on layer 0)) and biases (layers > 0)
        self.w_in: list[list[torch.Tensor]] = []
        self.b_in: list[list[torch.Tensor]] = []
        self.w_hh: list[list[torch.Tensor]] = []  # [layer][member] (3H, H), rows r, z, n
        for layer in range(self.layers):
            w_in, b_in, w_hh = [], [], []
            for net in nets:
                w, bi, wh, bh = (getattr(net.rnn, f"{name}_l{layer}").detach() for name in
                                 ("weight_ih", "bias_ih", "weight_hh", "bias_hh"))
                full = w.new_zeros(4 * hid, w.shape[1])
                full[:hid], full[hid:3 * hid] = w[2 * hid:], w[:2 * hid]
                bias = torch.cat([bi[2 * hid:], bi[:2 * hid] + bh[:2 * hid], bh[2 * hid:]])
                if layer == 0:  # the input gets a constant-1 column carrying the biases
                    full = torch.cat([full, bias.unsqueeze(1)], dim=1)
                w_in.append(full.contiguous())
                b_in.append(bias)
                w_hh.append(wh)
            self.w_in.append(w_in)
            self.b_in.append(b_in)
            self.w_hh.append(w_hh)
        heads = [_folded_heads(n.heads) for n in nets]
        self.wh = [w[:, :hid].contiguous() for w, _ in heads]  # (A*6, H) per member
        self.ws = torch.cat([w[:, hid:] for w, _ in heads])  # (K*A*6, S)
        self.bs = torch.cat([b for _, b in heads])

    @staticmethod
    def supports(nets: list[BehaviorNet]) -> bool:
        """Whether the members are GRUs of one shape with plain (``heads``) output heads."""
        first = nets[0]
        return isinstance(first, RecurrentNet) and all(
            isinstance(n, RecurrentNet) and not n.is_lstm and _plain_heads(n)
            and n.n_actions == first.n_actions and n.n_static == first.n_static
            and n.cfg.hidden == first.cfg.hidden and n.cfg.layers == first.cfg.layers
            for n in nets)

    def init_state(self, static: torch.Tensor) -> State:
        """Zero hidden states ``(K, layers, n, hidden)`` and the static features ``(n, S)``."""
        h = static.new_zeros(self.n_members, self.layers, static.shape[0], self.hidden)
        return (h, static)

    def step(self, state: State, raw: torch.Tensor, action: torch.Tensor) -> State:
        """Every member's hidden state after one observed period."""
        h, static = state
        enc = self.nets[0].encode(raw, action)
        x = torch.cat([enc, enc.new_ones(enc.shape[0], 1)], dim=1)
        new = torch.empty_like(h)
        g = self.hidden
        for rows in _chunks(h.shape[2]):
            for m in range(self.n_members):
                inp = x[rows]
                for layer in range(self.layers):
                    prev = h[m, layer, rows]
                    w = self.w_in[layer][m]
                    buf = (torch.mm(inp, w.T) if layer == 0
                           else torch.addmm(self.b_in[layer][m], inp, w.T))
                    buf[:, g:].addmm_(prev, self.w_hh[layer][m].T)
                    rz = buf[:, g:3 * g].sigmoid_()
                    cand = buf[:, :g].addcmul_(rz[:, :g], buf[:, 3 * g:]).tanh_()
                    inp = torch.lerp(cand, prev, rz[:, g:], out=new[m, layer, rows])
        return (new, static)

    def n_rows(self, state: State) -> int:
        """The batch size of ``state``."""
        return state[0].shape[2]

    def picked_outputs(self, state: State, pick: torch.Tensor) -> torch.Tensor:
        """Outputs by output ``(A*6, n)`` of member ``pick[i]`` for row i: each member's
        heads run on its own rows only (every member's hidden state still moves on in
        :meth:`step`)."""
        h, static = state
        a6 = self.n_actions * N_OUT
        out = h.new_empty(a6, h.shape[2])
        for m, rows in self._groups(pick):
            block = slice(m * a6, (m + 1) * a6)
            o = torch.addmm(self.bs[block].unsqueeze(1), self.ws[block],
                            static.index_select(0, rows).T)
            out.index_copy_(1, rows, o.addmm_(self.wh[m], h[m, -1].index_select(0, rows).T))
        return out

    def outputs(self, state: State) -> torch.Tensor:
        """Every member's outputs for the coming period by output, ``(K, A*6, n)``."""
        h, static = state
        k, n, a6 = self.n_members, h.shape[2], self.n_actions * N_OUT
        out = h.new_empty(k, a6, n)
        for rows in _chunks(n):
            # the static part of every member's heads, (K*A*6, rows)
            s = torch.addmm(self.bs.unsqueeze(1), self.ws, static[rows].T)
            for m in range(k):
                torch.addmm(s[m * a6:(m + 1) * a6], self.wh[m], h[m, -1, rows].T,
                            out=out[m, :, rows])
        return out


_KINDS: tuple[type[FeatureMembers] | type[GRUMembers], ...] = (FeatureMembers, GRUMembers)


def can_stack(nets: list[BehaviorNet]) -> bool:
    """Whether :func:`stack_members` has a stacked form of ``nets``."""
    return any(kind.supports(nets) for kind in _KINDS)


def stack_members(nets: list[BehaviorNet]) -> StackedMembers:
    """The stacked form of ``nets`` (see :func:`can_stack`).

    Raises:
        ValueError: The members have no stacked form.
    """
    for kind in _KINDS:
        if kind.supports(nets):
            return kind(nets)
    raise ValueError(f"no stacked form of {len(nets)} {type(nets[0]).__name__} members")
