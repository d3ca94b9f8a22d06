"""The common policy interface: action probabilities and sampling on numpy arrays.

Every policy of nudgegym (rule-based, SB3-backed, loaded from an exported file) answers the same
two questions, so that training, evaluation and off-policy evaluation accept any of them:

* ``action_probabilities(obs, action_mask=None) -> (n, n_actions)``: the probability of each
  action for each of ``n`` observations (rows sum to 1);
* ``act(obs, rng, action_mask=None) -> (n,)``: one sampled action index per observation.

Masked actions (``action_mask[i, a] == False``) get probability 0 and each row is renormalised;
a row whose allowed actions all had probability 0 becomes uniform over its allowed actions.

Concrete policies subclass :class:`BasePolicy` and implement only ``_action_probabilities``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "BasePolicy",
    "FixedActionPolicy",
    "Policy",
    "TablePolicy",
    "UniformRandomPolicy",
    "actions_from_uniforms",
    "apply_action_mask",
    "sample_actions",
]


@runtime_checkable
class Policy(Protocol):
    """What every policy offers: action probabilities and sampled actions for a batch of obs."""

    n_actions: int

    def action_probabilities(
        self, obs: np.ndarray, action_mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Probabilities of each action, shape ``(n, n_actions)``; rows sum to 1."""
        ...

    def act(
        self, obs: np.ndarray, rng: np.random.Generator, action_mask: np.ndarray | None = None
    ) -> np.ndarray:
        """One sampled action index per observation, shape ``(n,)``."""
        ...


def apply_action_mask(probs: np.ndarray, action_mask: np.ndarray | None) -> np.ndarray:
    """Zero the masked actions of ``probs`` and renormalise each row.

    Args:
        probs: Action probabilities, shape ``(n, n_actions)``.
        action_mask: Boolean ``(n, n_actions)`` (or ``(n_actions,)`` for every row); ``True`` =
            allowed. ``None`` returns ``probs`` unchanged.

    Returns:
        The masked, renormalised probabilities. A row whose allowed actions all had probability
        0 becomes uniform over its allowed actions.

    Raises:
        ValueError: If the mask has the wrong shape or a row allows no action.

    Example:
        >>> apply_action_mask(np.array([[0.5, 0.5, 0.0]]), np.array([[False, True, True]]))
        array([[0., 1., 0.]])
    """
    if action_mask is None:
        return probs
    mask = np.asarray(action_mask)
    if mask.dtype != bool:
        raise TypeError(f"`action_mask` must be boolean; got dtype {mask.dtype}")
    if mask.ndim == 1:
        mask = np.broadcast_to(mask, probs.shape)
    if mask.shape != probs.shape:
        raise ValueError(
            f"`action_mask` must have shape {probs.shape} (or ({probs.shape[1]},)); "
            f"got {mask.shape}"
        )
    empty = ~mask.any(axis=1)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise ValueError(f"`action_mask` allows no action at row {row}")
    masked = np.where(mask, probs, 0.0)
    total = masked.sum(axis=1, keepdims=True)
    uniform = mask / mask.sum(axis=1, keepdims=True)
    return np.where(total > 0, masked / np.where(total > 0, total, 1.0), uniform)


class BasePolicy(ABC):
    """Base class of nudgegym policies: subclasses implement ``_action_probabilities`` only.

    Args:
        n_actions: Number of actions of the catalog.
    """

    def __init__(self, n_actions: int) -> None:
        if not isinstance(n_actions, (int, np.integer)) or n_actions < 1:
            raise ValueError(f"`n_actions` must be a positive integer; got {n_actions!r}")
        self.n_actions = int(n_actions)

    @abstractmethod
    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        """Unmasked action probabilities, shape ``(n, n_actions)``."""

    def action_probabilities(
        self, obs: np.ndarray, action_mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Probabilities of each action for each observation.

        Args:
            obs: Observations, shape ``(n, ...)``.
            action_mask: Optional boolean ``(n, n_actions)``; masked actions get probability 0.

        Returns:
            Float array ``(n, n_actions)`` whose rows sum to 1.
        """
        obs = _check_obs(obs)
        probs = np.asarray(self._action_probabilities(obs), dtype=np.float64)
        expected = (len(obs), self.n_actions)
        if probs.shape != expected:
            raise ValueError(
                f"{type(self).__name__} returned probabilities of shape {probs.shape}; "
                f"expected {expected}"
            )
        return apply_action_mask(probs, action_mask)

    def act(
        self, obs: np.ndarray, rng: np.random.Generator, action_mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Sample one action per observation by inverse CDF (one uniform draw per row).

        Args:
            obs: Observations, shape ``(n, ...)``.
            rng: The generator to draw from.
            action_mask: Optional boolean ``(n, n_actions)``; masked actions are never drawn.

        Returns:
            Integer array ``(n,)`` of action indices.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"`rng` must be a numpy Generator; got {type(rng).__name__}")
        probs = self.action_probabilities(obs, action_mask)
        return sample_actions(probs, rng)


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one action per row of ``probs`` (shape ``(n, n_actions)``) by inverse CDF."""
    return actions_from_uniforms(probs, rng.random(len(probs)))


def actions_from_uniforms(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """The actions :func:`sample_actions` draws when its uniforms are ``uniforms`` (shape
    ``(n,)``, in [0, 1)): per row of ``probs``, the first action whose CDF exceeds it."""
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]  # the last entry is exactly 1, so u < 1 always finds an action
    # the first action whose CDF exceeds u; zero-probability actions are never chosen
    return (cdf <= np.asarray(uniforms)[:, None]).sum(axis=1).astype(np.int64)


def _check_obs(obs: np.ndarray) -> np.ndarray:
    obs = np.asarray(obs)
    if obs.ndim < 1:
        raise ValueError(f"`obs` must have a leading batch dimension; got shape {obs.shape}")
    return obs


class TablePolicy(BasePolicy):
    """A policy given as a table of action probabilities.

    Args:
        action_dist: ``(n, n_actions)``: row ``i`` is used for the ``i``-th observation of every
            call (so ``obs`` must have ``n`` rows); or ``(n_actions,)``: the same distribution
            for every observation (a context-free policy).

    Example:
        >>> pi = TablePolicy(np.array([0.2, 0.8]))
        >>> pi.action_probabilities(np.zeros((2, 3)))
        array([[0.2, 0.8],
               [0.2, 0.8]])
    """

    def __init__(self, action_dist: np.ndarray) -> None:
        table = np.asarray(action_dist, dtype=np.float64)
        if table.ndim not in (1, 2) or table.shape[-1] < 1:
            raise ValueError(
                f"`action_dist` must have shape (n, n_actions) or (n_actions,); got {table.shape}"
            )
        rows = table.reshape(-1, table.shape[-1])
        bad = ~np.isfinite(rows).all(axis=1) | (rows < 0).any(axis=1)
        bad |= ~np.isclose(rows.sum(axis=1), 1.0, atol=1e-6)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"`action_dist` rows must be non-negative and sum to 1; row {i} is {rows[i]} "
                f"(sum {float(rows[i].sum())})"
            )
        super().__init__(table.shape[-1])
        self.action_dist = table

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        if self.action_dist.ndim == 1:
            return np.broadcast_to(self.action_dist, (len(obs), self.n_actions)).copy()
        if len(obs) != len(self.action_dist):
            raise ValueError(
                f"TablePolicy has {len(self.action_dist)} rows; got {len(obs)} observations"
            )
        return self.action_dist


class FixedActionPolicy(BasePolicy):
    """Always the same action (where it is masked: uniform over the allowed actions).

    Example:
        >>> FixedActionPolicy(1, n_actions=3).action_probabilities(np.zeros((1, 2)))
        array([[0., 1., 0.]])
    """

    def __init__(self, action: int, n_actions: int) -> None:
        super().__init__(n_actions)
        if not isinstance(action, (int, np.integer)) or not 0 <= action < self.n_actions:
            raise ValueError(f"`action` must be in [0, {self.n_actions}); got {action!r}")
        self.action = int(action)

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(obs), self.n_actions))
        probs[:, self.action] = 1.0
        return probs


class UniformRandomPolicy(BasePolicy):
    """Every allowed action with the same probability.

    Example:
        >>> mask = np.array([True, True, False, False])
        >>> UniformRandomPolicy(4).action_probabilities(np.zeros((1, 2)), mask)
        array([[0.5, 0.5, 0. , 0. ]])
    """

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        return np.full((len(obs), self.n_actions), 1.0 / self.n_actions)
