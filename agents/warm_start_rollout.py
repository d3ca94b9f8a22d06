"""Warm starts from the rollout-improved teacher (:mod:`agents.rollout_improvement`).

``method: rollout`` under a YAML's ``warm_start:`` selects these instead of the plain ones of
:mod:`agents.warm_start`:

* DQN (:func:`warm_start_q_rollout`): the Q-network IS the rollout fit: it regresses the
  measured common-random-number branch returns of the teacher (then of its own greedy policy,
  ``iterations`` times), so its greedy policy is the improved policy; DQN's fine-tuning keeps
  a large-margin term toward that improved policy (not toward the rule).
* PPO (:func:`improved_teacher`, then :func:`agents.warm_start.warm_start_actor_critic`): the
  same fit in a separate Q-network with the actor's layers, copied into the actor (logits =
  Q / temperature: its greedy policy exactly; :func:`clone_config`), whose value the critic
  learns, in place of the rule.

Both branch the users where the training env steps them: the true world (``--env world``,
:class:`~agents.rollout_improvement.WorldBranches`) or the learned shop
(:class:`~agents.shop_branches.ShopBranches`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from torch import nn

from agents.policy import BasePolicy
from agents.rollout_improvement import (
    GreedyQPolicy,
    RolloutConfig,
    WorldBranches,
    improve_by_branches,
    seeded_init,
)
from agents.warm_start import WarmStartConfig
from predictors import ConfigError

__all__ = ["clone_config", "improved_teacher", "rollout_config", "warm_start_q_rollout"]

#: ``warm_start.method`` values per algorithm family.
METHODS = ("fqe", "clone", "rollout")


def _from_mapping(cls: type, key: str, mapping: dict[str, Any] | None, seed: int,
                  defaults: dict[str, Any]) -> Any:
    """``cls(**defaults, **mapping, seed=seed)`` from the YAML mapping ``warm_start.KEY``.

    Raises:
        ConfigError: Not a mapping, an unknown key or a bad value (named).
    """
    mapping = {} if mapping is None else mapping
    if not isinstance(mapping, dict):
        raise ConfigError(f"`warm_start.{key}` must be a mapping; got {type(mapping).__name__}")
    known = {f.name for f in fields(cls)} - {"seed"}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ConfigError(f"`warm_start.{key}` keys {unknown} are unknown; allowed: "
                          f"{sorted(known)}")
    try:
        return cls(**{**defaults, **mapping}, seed=seed)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"`warm_start.{key}`: {e}") from None


def rollout_config(mapping: dict[str, Any] | None, seed: int) -> RolloutConfig:
    """A :class:`RolloutConfig` from a YAML mapping (``warm_start.rollout``), with ``seed``.

    Raises:
        ConfigError: Not a mapping, an unknown key or a bad value (named).
    """
    return _from_mapping(RolloutConfig, "rollout", mapping, seed, {})


def clone_config(mapping: dict[str, Any] | None, seed: int) -> WarmStartConfig:
    """The :class:`~agents.warm_start.WarmStartConfig` PPO clones the improved policy with
    (``warm_start.rollout_clone``); default: the teacher's Q-network copied into the actor
    (``copy_temperature`` 0.02), else no label smoothing, 100 epochs.

    The improved policy differs from the rule in a few per cent of states, so the clone must
    be nearly exact (measured, default world, seed 0, 20,000 users: label smoothing 0.1 and 40
    epochs clone it at 96.5% agreement and +3.3% over the rule, the teacher being +4.8%; no
    smoothing and 100 epochs at 97.9% and +5.2%). Copying the weights makes it exact: the
    actor's greedy action is the teacher's in every state.

    Raises:
        ConfigError: Not a mapping, an unknown key or a bad value (named).
    """
    return _from_mapping(WarmStartConfig, "rollout_clone", mapping, seed,
                         {"label_smoothing": 0.0, "epochs": 100, "copy_temperature": 0.02})


def branch_source(venv: Any, shop: Any = None, data: Any = None) -> tuple[Any, int]:
    """The branch source of a raw training env and its horizon: the world's users
    (:class:`~envs.world_vec_env.WorldVecEnv`) or the learned shop's
    (:class:`~envs.shop_env.ShopVecEnv`, with the safety options ``shop``, a
    :class:`~agents.shop_branches.ShopBranchConfig`; ``data``: the dataset folder).

    Raises:
        ConfigError: Safety options for the true world, or an env that cannot be branched.
    """
    if all(hasattr(venv, k) for k in ("world", "starts", "horizon")):
        if shop is not None and shop.active:
            raise ConfigError("`warm_start.shop` (safe branches) applies to the learned shop "
                              "only; drop it with --env world")
        return WorldBranches(venv.world, venv.starts, venv.static), int(venv.horizon)
    if all(hasattr(venv, k) for k in ("shop", "sim", "horizon")):
        from agents.shop_branches import ShopBranches

        return (ShopBranches(venv.shop.simulator, venv.shop.starts, shop, data),
                int(venv.horizon))
    raise ConfigError("the rollout warm start (`warm_start.method: rollout`) branches the "
                      "env's users; train with --env world or the learned shop, or use "
                      "`method: fqe` (DQN) / `method: clone` (PPO)")


def warm_start_q_rollout(model: Any, venv: Any, teacher: BasePolicy, config: RolloutConfig,
                         reward_scale: float = 1.0, margin: float = 0.05,
                         margin_weight: float = 1.0,
                         keep_margin: bool = True, shop: Any = None,
                         data: Any = None) -> dict[str, Any]:
    """Fit DQN's Q-network to rollout-measured action values of ``teacher`` (iterated).

    Args:
        model: An SB3 DQN (``q_net``, ``q_net_target``); ``VectorisedDQN`` also keeps the
            large-margin term toward the improved policy during training.
        venv: The raw training env (:func:`branch_source`).
        teacher: The base policy (the tuned rule).
        config: Rollout options.
        reward_scale: The learner's reward scale (targets are scaled returns).
        margin, margin_weight: The kept large-margin term (scaled reward units).
        keep_margin: Keep it during DQN's training.
        shop, data: The learned shop's safety options and dataset folder
            (:func:`branch_source`).

    Returns:
        Metrics of :func:`~agents.rollout_improvement.improve_by_rollouts`, ``method``.
    """
    source, horizon = branch_source(venv, shop, data)
    model.q_net.set_training_mode(True)
    improved, info = improve_by_branches(model.q_net, source, teacher, horizon, config,
                                         reward_scale=reward_scale)
    model.q_net.set_training_mode(False)
    model.q_net_target.load_state_dict(model.q_net.state_dict())
    if keep_margin and hasattr(model, "keep_teacher_margin"):
        model.keep_teacher_margin(improved, margin, margin_weight)
    return {"method": "rollout", **info, **_support(source)}


def _support(source: Any) -> dict[str, Any]:
    """The safe branches' support policy once resolved, for the metrics."""
    rule = getattr(source, "support_rule", None)
    return {"support_policy": rule} if rule else {}


def improved_teacher(venv: Any, teacher: BasePolicy, config: RolloutConfig,
                     net_arch: tuple[int, ...] = (64, 64),
                     reward_scale: float = 1.0, shop: Any = None,
                     data: Any = None) -> tuple[GreedyQPolicy, dict[str, Any]]:
    """The rollout-improved policy of ``teacher`` in a fresh ReLU Q-network (for PPO to clone);
    ``shop``, ``data``: as :func:`branch_source` takes them.

    Returns:
        The improved policy and the rollout metrics.
    """
    source, horizon = branch_source(venv, shop, data)
    d = int(venv.observation_space.shape[0])
    torch_gen = torch.Generator().manual_seed(config.seed)
    layers: list[nn.Module] = []
    width = d
    for h in net_arch:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    net = seeded_init(nn.Sequential(*layers, nn.Linear(width, source.n_actions)), torch_gen)
    policy, info = improve_by_branches(net, source, teacher, horizon, config,
                                       reward_scale=reward_scale)
    return policy, {**info, **_support(source)}
