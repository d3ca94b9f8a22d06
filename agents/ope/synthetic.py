"""Synthetic contextual-bandit logs with a known target value, for tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.ope.data import LoggedData

__all__ = ["SyntheticBandit", "make_synthetic_bandit"]


@dataclass(frozen=True)
class SyntheticBandit:
    """Logged rounds of a softmax logging policy, a softmax target policy and the truth.

    Attributes:
        data: The logged rounds (``obs`` are the contexts).
        action_dist: Target probabilities ``(n, n_actions)``.
        expected_reward: ``E[r | x_i, a]`` ``(n, n_actions)``.
        true_value: ``mean_i sum_a pi(a | x_i) E[r | x_i, a]``: the target's value on these
            contexts.
    """

    data: LoggedData
    action_dist: np.ndarray
    expected_reward: np.ndarray
    true_value: float


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def make_synthetic_bandit(
    n_rounds: int,
    n_actions: int = 4,
    dim: int = 5,
    *,
    target_temperature: float = -1.0,
    uniform_logging: bool = False,
    seed: int = 0,
) -> SyntheticBandit:
    """Draw contexts, logged actions and Bernoulli rewards.

    The logging policy is ``softmax(x @ theta)`` (or uniform), the target
    ``softmax(target_temperature * x @ theta)``, and ``E[r | x, a] =
    sigmoid(x @ beta_a - 1)``.

    Args:
        n_rounds: Number of rounds.
        n_actions: Number of actions.
        dim: Context dimension.
        target_temperature: Scale of the target's logits relative to the logging policy's
            (negative: the target prefers what the logger avoids).
        uniform_logging: Log with the uniform policy instead.
        seed: Seed of every draw.

    Example:
        >>> bandit = make_synthetic_bandit(1000, seed=0)
        >>> bandit.data.n_rounds, bandit.action_dist.shape
        (1000, (1000, 4))
    """
    if n_rounds < 1 or n_actions < 2 or dim < 1:
        raise ValueError(
            f"need n_rounds >= 1, n_actions >= 2, dim >= 1; got {n_rounds}, {n_actions}, {dim}"
        )
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rounds, dim)).astype(np.float32)
    theta = rng.normal(scale=0.5, size=(dim, n_actions))
    beta = rng.normal(scale=0.7, size=(dim, n_actions))
    logits = x @ theta
    logging = (np.full((n_rounds, n_actions), 1.0 / n_actions) if uniform_logging
               else _softmax(logits))
    target = _softmax(target_temperature * logits)
    cdf = np.cumsum(logging, axis=1)
    cdf /= cdf[:, -1:]
    action = (cdf <= rng.random(n_rounds)[:, None]).sum(axis=1)
    mu = 1.0 / (1.0 + np.exp(-(x @ beta - 1.0)))
    rows = np.arange(n_rounds)
    reward = (rng.random(n_rounds) < mu[rows, action]).astype(np.float64)
    data = LoggedData(action=action, reward=reward, pscore=logging[rows, action],
                      n_actions=n_actions, obs=x)
    return SyntheticBandit(data=data, action_dist=target, expected_reward=mu,
                           true_value=float(np.einsum("ij,ij->i", target, mu).mean()))
