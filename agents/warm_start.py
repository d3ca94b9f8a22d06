"""Warm start of an actor-critic from a teacher policy (e.g. the tuned rule).

PPO from scratch must first rediscover what a one-line rule already does, and its early updates
are driven by an untrained critic. :func:`warm_start_actor_critic` instead

1. rolls the teacher out in the training env for ``n_steps`` steps of every env (users restart
   as in training), recording observations, the teacher's actions and the rewards;
2. clones the teacher into the actor: cross-entropy of the policy's action distribution
   against the teacher's action, smoothed by ``label_smoothing`` (the clone keeps some
   entropy, so PPO still explores; its greedy action is the teacher's);
3. fits the critic to the teacher's value: ``rounds`` of regression on bootstrapped
   discounted returns of the recorded stretch (the tail beyond the stretch and truncated
   episodes are bootstrapped with the current critic, terminated ones with 0), the same
   targets PPO's own critic learns.

The model's optimiser is not touched (separate Adam steps on the same parameters), so PPO
starts from the cloned policy with its own settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agents.policy import BasePolicy

__all__ = ["WarmStartConfig", "warm_start_actor_critic"]


@dataclass(frozen=True)
class WarmStartConfig:
    """Options of :func:`warm_start_actor_critic`.

    Attributes:
        n_steps: Steps of every env the teacher is rolled out for.
        epochs: Passes over the recorded data for the actor.
        rounds: Bootstrapped regression rounds for the critic (each a pass over the data).
        batch_size: Minibatch size.
        learning_rate: Adam's step size.
        label_smoothing: Probability mass spread uniformly over the actions in the actor's
            target.
        seed: Seed of the teacher's draws and the minibatch order.
    """

    n_steps: int = 64
    epochs: int = 40
    rounds: int = 6
    batch_size: int = 8192
    learning_rate: float = 3e-3
    label_smoothing: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_steps", "epochs", "rounds", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1; got {getattr(self, name)!r}")
        if not (self.learning_rate > 0 and 0 <= self.label_smoothing < 1):
            raise ValueError("`learning_rate` must be > 0 and `label_smoothing` in [0, 1); got "
                             f"{self.learning_rate!r}, {self.label_smoothing!r}")


def _rollout(venv: Any, teacher: BasePolicy, n_steps: int, rng: np.random.Generator,
             reward_scale: float) -> dict[str, np.ndarray]:
    obs = venv.reset()
    n = venv.num_envs
    d = obs.shape[1]
    rec = {"obs": np.zeros((n_steps, n, d), np.float32), "action": np.zeros((n_steps, n), int),
           "reward": np.zeros((n_steps, n), np.float32), "done": np.zeros((n_steps, n), bool),
           "truncated": np.zeros((n_steps, n), bool), "next_obs": np.zeros((n_steps, n, d),
                                                                           np.float32)}
    for t in range(n_steps):
        mask = venv.action_masks() if hasattr(venv, "action_masks") else None
        action = teacher.act(obs, rng, mask)
        venv.step_async(action)
        new_obs, reward, done, infos = venv.step_wait()
        nxt = new_obs.copy()
        for i in np.flatnonzero(done):
            nxt[i] = infos[i]["terminal_observation"]
            rec["truncated"][t, i] = bool(infos[i].get("TimeLimit.truncated", False))
        rec["obs"][t], rec["action"][t], rec["reward"][t] = obs, action, reward * reward_scale
        rec["done"][t], rec["next_obs"][t] = done, nxt
        obs = new_obs
    return rec


def warm_start_actor_critic(model: Any, venv: Any, teacher: BasePolicy,
                            config: WarmStartConfig | None = None,
                            reward_scale: float = 1.0) -> dict[str, float]:
    """Clone ``teacher`` into ``model``'s actor and fit its critic to the teacher's value.

    Args:
        model: An SB3 actor-critic (PPO, MaskablePPO) whose policy has ``evaluate_actions``
            and ``predict_values``.
        venv: The raw training VecEnv (before reward wrappers); it is reset afterwards by
            ``learn``.
        teacher: The policy to clone (reads the same observation columns).
        config: Options.
        reward_scale: The learner's reward scale (the critic learns scaled returns).

    Returns:
        ``accuracy`` (share of recorded states where the actor's greedy action is the
        teacher's), ``value_loss`` (last critic round) and ``transitions``.
    """
    cfg = config or WarmStartConfig()
    rng = np.random.default_rng(cfg.seed)
    rec = _rollout(venv, teacher, cfg.n_steps, rng, reward_scale)
    policy, gamma = model.policy, float(model.gamma)
    dev = policy.device
    n_steps, n = rec["action"].shape
    obs = torch.as_tensor(rec["obs"].reshape(n_steps * n, -1), device=dev)
    act = torch.as_tensor(rec["action"].reshape(-1), device=dev)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate)
    gen = torch.Generator().manual_seed(cfg.seed)
    m = len(obs)
    n_act = int(model.action_space.n)
    policy.set_training_mode(True)
    for _ in range(cfg.epochs):
        for idx in torch.randperm(m, generator=gen).split(cfg.batch_size):
            logits = policy.get_distribution(obs[idx]).distribution.logits
            loss = F.cross_entropy(logits, act[idx], label_smoothing=cfg.label_smoothing
                                   * n_act / max(n_act - 1, 1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    value_loss = float("nan")
    next_obs = torch.as_tensor(rec["next_obs"].reshape(n_steps * n, -1), device=dev)
    for _ in range(cfg.rounds):
        with torch.no_grad():
            v_next = policy.predict_values(next_obs).reshape(n_steps, n).cpu().numpy()
        target = np.zeros((n_steps, n), np.float32)
        carry = v_next[-1]
        for t in range(n_steps - 1, -1, -1):
            # episode ends: terminated -> 0, truncated -> V(terminal obs); else continue
            cont = np.where(rec["done"][t], np.where(rec["truncated"][t], v_next[t], 0.0), carry)
            target[t] = rec["reward"][t] + gamma * cont
            carry = target[t]
        tgt = torch.as_tensor(target.reshape(-1), device=dev)
        for idx in torch.randperm(m, generator=gen).split(cfg.batch_size):
            loss = F.mse_loss(policy.predict_values(obs[idx]).reshape(-1), tgt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            value_loss = float(loss.detach())
    policy.set_training_mode(False)
    with torch.no_grad():
        greedy = policy.get_distribution(obs).distribution.probs.argmax(dim=1)
    return {"accuracy": float((greedy == act).float().mean()), "value_loss": value_loss,
            "transitions": int(m)}
