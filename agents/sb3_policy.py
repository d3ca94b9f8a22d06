"""An SB3 model (PPO, MaskablePPO, DQN) behind the common policy interface.

:class:`SB3Policy` turns a model into ``action_probabilities(obs, action_mask)`` and
``act(obs, rng, action_mask)`` on numpy arrays; torch stays inside. Actor-critic models give
their action distribution (masked actions removed and the rest renormalised, which equals
MaskablePPO's masked softmax); DQN gives the one-hot greedy action. With
``deterministic=True`` every model gives its one-hot argmax, taken over the ALLOWED actions,
which is what ``model.predict(obs, deterministic=True)`` returns without masks.

A trained run folder (``nudgegym train-policy --out RUN``) holds ``model.zip`` and
``policy.json`` (algorithm, observation and action names); :func:`load_sb3_policy` rebuilds the
policy from them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.policy import BasePolicy, apply_action_mask
from predictors import CheckpointError, resolve_device

__all__ = ["POLICY_FILE", "SB3Policy", "load_sb3_policy", "write_policy_file"]

#: File of a run folder describing its policy.
POLICY_FILE = "policy.json"


class SB3Policy(BasePolicy):
    """The common policy interface over an SB3 model.

    Args:
        model: A fitted PPO, MaskablePPO or DQN (anything with ``policy`` and ``action_space``).
        deterministic: One-hot greedy actions instead of the stochastic policy.
        observation_names: Names of the observation columns the model was trained on.
        batch_size: Rows per forward pass.

    Example:
        >>> import gymnasium as gym
        >>> from stable_baselines3 import PPO
        >>> model = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=64, seed=0)
        >>> SB3Policy(model).action_probabilities(np.zeros((2, 4), np.float32)).shape
        (2, 2)
    """

    def __init__(self, model: Any, deterministic: bool = False,
                 observation_names: Sequence[str] | None = None,
                 batch_size: int = 65536) -> None:
        n = getattr(model.action_space, "n", None)
        if n is None:
            raise ValueError(f"SB3Policy needs a Discrete action space; got {model.action_space}")
        super().__init__(int(n))
        self.model, self.deterministic, self.batch_size = model, bool(deterministic), batch_size
        self.observation_names = list(observation_names) if observation_names else None
        self.is_q_network = hasattr(model.policy, "q_net")

    def _scores(self, obs: np.ndarray) -> np.ndarray:
        """Q-values (DQN) or action probabilities (actor-critic), ``(n, n_actions)``."""
        policy = self.model.policy
        policy.set_training_mode(False)
        out = []
        with torch.no_grad():
            for b in range(0, len(obs), self.batch_size):
                t = policy.obs_to_tensor(np.asarray(obs[b:b + self.batch_size], np.float32))[0]
                if self.is_q_network:
                    s = policy.q_net(t)
                else:
                    s = policy.get_distribution(t).distribution.probs
                out.append(s.cpu().numpy().astype(np.float64))
        if not out:
            return np.zeros((0, self.n_actions))
        return np.concatenate(out)

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        return self.action_probabilities(obs)

    def action_probabilities(self, obs: np.ndarray,
                             action_mask: np.ndarray | None = None) -> np.ndarray:
        """Probabilities ``(n, n_actions)``; greedy models take the argmax over allowed actions."""
        obs = np.asarray(obs)
        if obs.ndim != 2:
            raise ValueError(f"`obs` must have shape (n, d); got {obs.shape}")
        expected = self.model.observation_space.shape
        if obs.shape[1:] != tuple(expected):
            raise ValueError(f"`obs` rows must have shape {tuple(expected)} (the model's "
                             f"observation space); got {obs.shape[1:]}")
        scores = self._scores(obs)
        if not (self.is_q_network or self.deterministic):
            return apply_action_mask(scores, action_mask)
        allowed = apply_action_mask(np.ones_like(scores), action_mask) > 0  # validates the mask
        best = np.where(allowed, scores, -np.inf).argmax(axis=1)
        probs = np.zeros_like(scores)
        probs[np.arange(len(best)), best] = 1.0
        return probs


def write_policy_file(folder: str | Path, algo: str, observation_names: Sequence[str],
                      action_names: Sequence[str]) -> Path:
    """Write ``policy.json`` describing a run folder's model."""
    from predictors.io import write_json

    return write_json(Path(folder) / POLICY_FILE, {
        "algo": algo, "model": "model.zip", "observation_names": list(observation_names),
        "action_names": list(action_names)})


def load_sb3_policy(run: str | Path, device: str = "cpu", deterministic: bool = True,
                    checkpoint: str | None = None) -> SB3Policy:
    """Load the policy of a ``train-policy`` run folder.

    Args:
        run: Run folder with ``policy.json`` and ``model.zip``.
        device: ``auto``, ``cpu`` or ``cuda[:n]``.
        deterministic: Greedy actions (the default for evaluation) or the stochastic policy.
        checkpoint: Another model file of the folder (e.g. ``checkpoint.zip``).

    Raises:
        CheckpointError: The folder lacks its files or names an unknown algorithm.
    """
    from agents.batched_sb3 import ALGORITHMS

    run = Path(run)
    meta_path = run / POLICY_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: missing; is {run} a `nudgegym train-policy` run?")
    meta = json.loads(meta_path.read_text())
    algo = meta.get("algo")
    if algo not in ALGORITHMS:
        raise CheckpointError(f"{meta_path}: `algo` must be one of {sorted(ALGORITHMS)}; "
                              f"got {algo!r}")
    path = run / (checkpoint or meta.get("model", "model.zip"))
    if not path.is_file():
        raise CheckpointError(f"{path}: missing model file")
    model = ALGORITHMS[algo].load(path, device=resolve_device(device))
    policy = SB3Policy(model, deterministic, meta.get("observation_names"))
    policy.action_names = meta.get("action_names")
    policy.algo = algo
    return policy
