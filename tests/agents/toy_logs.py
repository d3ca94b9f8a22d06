"""Logs of the two-state toy MDP (:class:`agents.ope.toy_mdp.ToyMDP`) shared by the
model-based OPE tests: a behaviour and a target policy, and 3,000 logged users."""

from __future__ import annotations

import numpy as np

from agents.ope.toy_mdp import ToyMDP

BEHAVIOUR = np.array([[0.7, 0.3], [0.4, 0.6]])
TARGET = np.array([[0.2, 0.8], [0.9, 0.1]])
H = 6


def toy_logs() -> tuple[ToyMDP, object, float]:
    """(the MDP, its logs under ``BEHAVIOUR``, the exact value of ``TARGET`` over ``H``)."""
    mdp = ToyMDP()
    return mdp, mdp.log(BEHAVIOUR, 3000, H, seed=1), mdp.value(TARGET, H)
