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

A Q-network (DQN) cannot be cloned from a teacher that only ever shows one action per state:
:func:`warm_start_q` instead evaluates the teacher (fitted Q evaluation) on transitions of an
epsilon-teacher (the teacher's action, a uniform one with probability ``explore``), so every
action's value is estimated from data, with a large-margin term that keeps the teacher's action
on top unless the data say otherwise by more than ``margin`` (the greedy policy of ``Q^teacher``
is one policy-improvement step over the teacher); the targets follow the recorded trajectory
while it agrees with the teacher (an off-policy return, exact for a deterministic teacher) and
bootstrap where it deviates; the transitions then seed DQN's replay buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.batched_sb3 import large_margin_loss
from agents.policy import BasePolicy
from predictors import check_int, check_number

__all__ = ["QWarmStartConfig", "WarmStartConfig", "warm_start_actor_critic", "warm_start_q"]


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
        copy_temperature: When > 0 and the teacher is a Q-network's greedy policy (``q_net``
            an ``nn.Sequential`` with the actor's layers, as
            :func:`agents.warm_start_rollout.improved_teacher` builds it), its weights are
            copied into the actor instead, the output layer divided by this (logits = Q /
            temperature, scaled reward units): the actor's greedy action is then the
            teacher's in every state, where cross-entropy cloning misses some of the few
            states in which the teacher leaves the rule. 0 (or another teacher): clone.
        seed: Seed of the teacher's draws and the minibatch order.
    """

    n_steps: int = 64
    epochs: int = 40
    rounds: int = 6
    batch_size: int = 8192
    learning_rate: float = 3e-3
    label_smoothing: float = 0.1
    copy_temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self, "n_steps", "epochs", "rounds", "batch_size", ge=1)
        check_number(self, "learning_rate", gt=0)
        check_number(self, "label_smoothing", ge=0, lt=1)
        check_number(self, "copy_temperature", ge=0)


def _copy_q_into_actor(policy: Any, teacher: BasePolicy, temperature: float) -> bool:
    """Copy the teacher's Q-network into the actor (logits = Q / temperature) when their
    layers match (flattened observation, same Linear shapes and activations); else False."""
    q_net = getattr(teacher, "q_net", None)
    extractor = getattr(policy, "mlp_extractor", None)
    if (not isinstance(q_net, nn.Sequential) or extractor is None
            or type(policy.features_extractor).__name__ != "FlattenExtractor"):
        return False
    actor = [*extractor.policy_net, policy.action_net]
    if len(actor) != len(q_net) or any(
            type(a) is not type(b)
            or (isinstance(a, nn.Linear) and a.weight.shape != b.weight.shape)
            for a, b in zip(actor, q_net, strict=True)):
        return False
    with torch.no_grad():
        for a, b in zip(actor, q_net, strict=True):
            if isinstance(a, nn.Linear):
                a.weight.copy_(b.weight.to(a.weight.device))
                a.bias.copy_(b.bias.to(a.bias.device))
        policy.action_net.weight.div_(temperature)
        policy.action_net.bias.div_(temperature)
    return True


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
        teacher's), ``value_loss`` (last critic round), ``transitions`` and ``actor``
        (``copied`` or ``cloned``, see ``copy_temperature``).
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
    copied = cfg.copy_temperature > 0 and _copy_q_into_actor(policy, teacher,
                                                             cfg.copy_temperature)
    for _ in range(0 if copied else cfg.epochs):
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
            "transitions": int(m), "actor": "copied" if copied else "cloned"}


@dataclass(frozen=True)
class QWarmStartConfig:
    """Options of :func:`warm_start_q`.

    Attributes:
        n_steps: Steps of every env the epsilon-teacher is rolled out for.
        explore: Probability of a uniform action instead of the teacher's.
        rounds: Fitted-Q-evaluation rounds (targets recomputed with the previous round's net).
        epochs: Passes over the data per round.
        batch_size: Minibatch size.
        learning_rate: Adam's step size.
        margin: Large-margin term: other actions are pushed ``margin`` (scaled reward units)
            below the teacher's action, with weight ``margin_weight`` (0: plain evaluation).
        margin_weight: Weight of the large-margin term.
        keep_margin: Keep the large-margin term during DQN's training (one margin step on a
            replay sample per training call, :meth:`agents.batched_sb3.VectorisedDQN.
            keep_teacher_margin`).
        seed: Seed of the draws and the minibatch order.
    """

    n_steps: int = 64
    explore: float = 0.2
    rounds: int = 8
    epochs: int = 4
    batch_size: int = 8192
    learning_rate: float = 1e-3
    margin: float = 0.05
    margin_weight: float = 1.0
    keep_margin: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self, "n_steps", "rounds", "epochs", "batch_size", ge=1)
        check_number(self, "explore", gt=0, le=1)
        check_number(self, "learning_rate", gt=0)
        check_number(self, "margin", "margin_weight", ge=0)


class _EpsTeacher(BasePolicy):
    """The teacher's action, or a uniform one with probability ``eps`` (behaviour policy)."""

    def __init__(self, teacher: BasePolicy, eps: float) -> None:
        super().__init__(teacher.n_actions)
        self.teacher, self.eps = teacher, eps

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        probs = np.asarray(self.teacher.action_probabilities(obs), dtype=float)
        return (1.0 - self.eps) * probs + self.eps / self.n_actions

    def act(self, obs: np.ndarray, rng: np.random.Generator,
            action_mask: np.ndarray | None = None) -> np.ndarray:
        a = np.asarray(self.teacher.act(obs, rng, action_mask))
        flip = rng.random(len(a)) < self.eps
        a[flip] = rng.integers(self.n_actions, size=int(flip.sum()))
        return a


def warm_start_q(model: Any, venv: Any, teacher: BasePolicy,
                 config: QWarmStartConfig | None = None,
                 reward_scale: float = 1.0) -> dict[str, float]:
    """Fit ``model``'s Q-network to the teacher's action values and seed its replay buffer.

    Args:
        model: An SB3 DQN (``q_net``, ``q_net_target``, ``replay_buffer``).
        venv: The raw training VecEnv (before reward wrappers).
        teacher: The policy evaluated (reads the same observation columns).
        config: Options.
        reward_scale: The learner's reward scale.

    Returns:
        ``agreement`` (share of recorded states where the greedy Q action is the teacher's),
        ``td_loss`` (last round), ``transitions``.
    """
    cfg = config or QWarmStartConfig()
    rng = np.random.default_rng(cfg.seed)
    rec = _rollout(venv, _EpsTeacher(teacher, cfg.explore), cfg.n_steps, rng, reward_scale)
    n_steps, n = rec["action"].shape
    m = n_steps * n
    flat = {k: v.reshape(m, *v.shape[2:]) for k, v in rec.items()}
    teach_now = np.asarray(teacher.act(flat["obs"], rng), np.int64)
    teach_next = np.asarray(teacher.act(flat["next_obs"], rng), np.int64)
    q_net, q_target, gamma = model.q_net, model.q_net_target, float(model.gamma)
    dev = model.device
    obs = torch.as_tensor(flat["obs"], device=dev)
    nxt = torch.as_tensor(flat["next_obs"], device=dev)
    act = torch.as_tensor(flat["action"], device=dev)
    a_now = torch.as_tensor(teach_now, device=dev)
    a_next = torch.as_tensor(teach_next, device=dev)
    # a terminated episode has no future; a truncated one continues from its terminal obs
    cont = torch.as_tensor(~flat["done"] | flat["truncated"], device=dev, dtype=torch.float32)
    opt = torch.optim.Adam(q_net.parameters(), lr=cfg.learning_rate)
    gen = torch.Generator().manual_seed(cfg.seed)
    td_loss = float("nan")
    q_net.set_training_mode(True)
    # off-policy returns of the teacher: follow the recorded trajectory while the behaviour
    # took the teacher's action, bootstrap with Q(s', teacher(s')) where it did not (and at
    # episode ends and the end of the stretch); exact for a deterministic teacher
    follow = np.zeros((n_steps, n), bool)
    follow[:-1] = ((rec["action"][1:] == teach_now.reshape(n_steps, n)[1:])
                   & ~rec["done"][:-1])
    for _ in range(cfg.rounds):
        q_target.load_state_dict(q_net.state_dict())
        with torch.no_grad():
            q_next = q_target(nxt).gather(1, a_next[:, None]).squeeze(1)
        boot = (cont * q_next).cpu().numpy().reshape(n_steps, n)
        r = rec["reward"]
        ret = np.zeros((n_steps, n), np.float32)
        ret[-1] = r[-1] + gamma * boot[-1]
        for t in range(n_steps - 2, -1, -1):
            ret[t] = r[t] + gamma * np.where(follow[t], ret[t + 1], boot[t])
        target = torch.as_tensor(ret.reshape(-1), device=dev)
        for _ in range(cfg.epochs):
            for idx in torch.randperm(m, generator=gen).split(cfg.batch_size):
                q = q_net(obs[idx])
                loss = F.smooth_l1_loss(q.gather(1, act[idx, None]).squeeze(1), target[idx])
                td_loss = float(loss.detach())
                if cfg.margin_weight > 0:
                    loss = loss + cfg.margin_weight * large_margin_loss(q, a_now[idx],
                                                                        cfg.margin)
                opt.zero_grad()
                loss.backward()
                opt.step()
    q_net.set_training_mode(False)
    q_target.load_state_dict(q_net.state_dict())
    for t in range(n_steps):  # the transitions seed the replay buffer
        infos = [{"TimeLimit.truncated": bool(tr)} for tr in rec["truncated"][t]]
        model.replay_buffer.add(rec["obs"][t], rec["next_obs"][t], rec["action"][t][:, None],
                                rec["reward"][t], rec["done"][t], infos)
    if cfg.keep_margin and hasattr(model, "keep_teacher_margin"):
        model.keep_teacher_margin(teacher, cfg.margin, cfg.margin_weight)
    with torch.no_grad():
        greedy = q_net(obs).argmax(dim=1)
    return {"agreement": float((greedy == a_now).float().mean()), "td_loss": td_loss,
            "transitions": int(m)}
