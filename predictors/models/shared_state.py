"""One carried state for all ensemble members of the feature families (``logistic``, ``mlp``).

Their carried state (totals, recency, the window of recent rows, static features) is a function
of the observed history only, not of the weights, so K members can share ONE state: a step
advances it once, the feature vector is assembled once, and only the K networks on it differ.
Other families (``gru``, ``lstm``, ``transformer``, ``markov``) carry weight-dependent states,
one per member (:class:`~predictors.models.ensemble.PredictorEnsemble` steps each member).
Stacking the GRU members' weights into batched matrix products was measured slower than K calls
of ``nn.GRU`` (N = 4096, K = 5, one thread), so it is not done.
"""

from __future__ import annotations

import torch

from predictors.models.families import BehaviorNet, FeatureNet, State


class SharedStateMembers:
    """K feature-family networks of the same shape stepped on one shared state."""

    def __init__(self, nets: list[BehaviorNet]) -> None:
        self.nets = nets

    @staticmethod
    def supports(nets: list[BehaviorNet]) -> bool:
        """Whether the members can share their state: the same feature family and shapes."""
        first = nets[0]
        return isinstance(first, FeatureNet) and all(
            type(n) is type(first) and n.n_actions == first.n_actions
            and n.n_static == first.n_static and n.cfg.history == first.cfg.history
            for n in nets)

    def init_state(self, static: torch.Tensor) -> State:
        """The shared state before the first period."""
        return self.nets[0].init_state(static)

    def step(self, state: State, raw: torch.Tensor, action: torch.Tensor) -> State:
        """Advance the shared state by one observed period."""
        return self.nets[0].step(state, raw, action)

    def readouts(self, state: State) -> torch.Tensor:
        """Every member's outputs for the coming period, ``(K, n, A, 6)``."""
        x = self.nets[0].inputs(*state)  # the features are the same for every member
        return torch.stack([net.from_inputs(x) for net in self.nets])
