"""One way to turn a policy argument of the CLI into a policy of the common interface.

``rule:NAME[:...]`` builds a rule baseline (so does a ``tune-rule`` run folder, holding
``tune.json``), a folder with ``manifest.json`` loads an ONNX export
(onnxruntime only), any other folder loads a ``nudgegym train-policy`` run. Every trained policy
is checked against the observation vector and the action catalog it is asked to act on, so a
model trained on other features or actions is refused with a clear error instead of acting on
misread columns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.policy import BasePolicy
from predictors import ConfigError, DatasetSpec

__all__ = ["HistoryColumns", "load_policy", "policy_features", "reads_static"]


def policy_features(text: str) -> list[str] | None:
    """The observation names a trained policy or export folder was trained on (``None`` for a
    rule, a tune-rule run or anything without ``policy.json`` / ``manifest.json``)."""
    import json

    folder = Path(text)
    if text.startswith("rule:") or not folder.is_dir():
        return None
    if (folder / "manifest.json").is_file():
        return list(json.loads((folder / "manifest.json").read_text())["inputs"]["obs"]
                    ["features"])
    if (folder / "policy.json").is_file():
        return list(json.loads((folder / "policy.json").read_text())["observation_names"])
    return None


def reads_static(text: str) -> bool:
    """Whether the policy ``text`` names observes static user features (``static:...``)."""
    return any(n.startswith("static:") for n in policy_features(text) or [])


def trained_env(text: str) -> str | None:
    """Where the ``train-policy`` run ``text`` was trained (``learned`` or ``world``, from its
    ``config.json``); ``None`` for a rule or a folder without that record."""
    if text.startswith("rule:"):
        return None
    path = Path(text) / "config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict) or cfg.get("command") != "train-policy":
        return None
    env = (cfg.get("options") or {}).get("env")
    return env if env in ("learned", "world") else None


class HistoryColumns(BasePolicy):
    """A policy that reads the first ``n`` columns of a longer observation (the history
    features, when the observation ends with static features it was not trained on)."""

    def __init__(self, policy: Any, n: int) -> None:
        super().__init__(policy.n_actions)
        self.policy, self.n = policy, int(n)

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.action_probabilities(obs[:, :self.n])

    def act(self, obs: np.ndarray, rng: np.random.Generator,
            action_mask: np.ndarray | None = None) -> np.ndarray:
        return self.policy.act(np.asarray(obs)[:, :self.n], rng, action_mask)


def load_policy(text: str, spec: DatasetSpec, observation_names: Sequence[str],
                data: str | Path | None = None, *, device: str = "cpu",
                deterministic: bool = True) -> Any:
    """The policy ``text`` names, for observations ``observation_names`` of dataset ``spec``.

    Args:
        text: ``rule:NAME[:ARG][:key=value,...]``, an export folder or a train-policy run.
        spec: The dataset's spec (action catalog).
        observation_names: The features the policy will be given, in order.
        data: Dataset folder (rules such as ``greedy`` fit their reward model there).
        device: Device of a trained SB3 model.
        deterministic: Greedy actions of a trained model (else its stochastic policy).

    Raises:
        ConfigError: Not a rule nor a folder, or a trained policy whose features or actions
            differ from ``observation_names`` / the catalog.
    """
    names = list(observation_names)
    if text.startswith("rule:"):
        from agents.baselines import make_rule, parse_rule

        name, params = parse_rule(text)
        return make_rule(name, spec, names, data=data, **params)
    folder = Path(text)
    if not folder.is_dir():
        raise ConfigError(f"--policy {text}: no such folder; expected rule:NAME[:...], an "
                          "export folder or a train-policy run folder")
    if (folder / "tune.json").is_file():  # a tune-rule run: its best rule
        from agents.tune_rule import read_tuned_rule

        return load_policy(read_tuned_rule(folder), spec, names, data)
    if (folder / "manifest.json").is_file():
        from agents.serving import ExportedPolicy

        policy: Any = ExportedPolicy(folder)
        seen, actions = list(policy.features), list(policy.action_names)
    else:
        from agents.sb3_policy import load_sb3_policy

        policy = load_sb3_policy(folder, device, deterministic=deterministic)
        seen = policy.observation_names
        actions = getattr(policy, "action_names", None)
    if seen is not None and list(seen) != names:
        raise ConfigError(f"{folder}: the policy observes {len(seen)} features "
                          f"{list(seen)[:4]}...; "
                          f"this use gives {len(names)} {names[:4]}...")
    if actions is not None and list(actions) != list(spec.action_names):
        raise ConfigError(f"{folder}: the policy's actions {list(actions)} differ from the "
                          f"dataset's {spec.action_names}")
    return policy
