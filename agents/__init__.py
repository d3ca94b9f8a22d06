"""nudgegym.agents: policies, training, evaluation, off-policy evaluation, export and the CLI.

Public names load on first use (PEP 562), so that light entry points such as
``nudgegym score`` (onnxruntime only) never import torch or Stable-Baselines3. To add a public
name, add it to ``_EXPORTS`` with the module that defines it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # off-policy evaluation report
    "ope_report": "agents.ope.report",
    "ope_table": "agents.ope.report",
    "plot_ope": "agents.ope.report",
    # rule baselines
    "RULES": "agents.baselines",
    "CampaignRulePolicy": "agents.baselines",
    "EmailCappedPolicy": "agents.baselines",
    "GreedyUpliftPolicy": "agents.baselines",
    "RFMPolicy": "agents.baselines",
    "RulePolicy": "agents.baselines",
    "WinbackPolicy": "agents.baselines",
    "make_rule": "agents.baselines",
    "parse_rule": "agents.baselines",
    # SB3 policies, training, evaluation
    "SB3Policy": "agents.sb3_policy",
    "load_sb3_policy": "agents.sb3_policy",
    "TrainConfig": "agents.train",
    "train_policy": "agents.train",
    "EvaluateConfig": "agents.evaluate",
    "evaluate_policies": "agents.evaluate",
    "load_policy": "agents.evaluate",
    "WorldVecEnv": "envs.world_vec_env",
    # the policy interface
    "BasePolicy": "agents.policy",
    "FixedActionPolicy": "agents.policy",
    "Policy": "agents.policy",
    "TablePolicy": "agents.policy",
    "UniformRandomPolicy": "agents.policy",
    # off-policy evaluation
    "LoggedData": "agents.ope",
    "Interval": "agents.ope",
    "DM": "agents.ope",
    "IPS": "agents.ope",
    "SNIPS": "agents.ope",
    "DR": "agents.ope",
    "SNDR": "agents.ope",
    "SwitchDR": "agents.ope",
    "PDIS": "agents.ope",
    "WPDIS": "agents.ope",
    "SequentialDR": "agents.ope",
    "FQE": "agents.ope",
    "FQEConfig": "agents.ope",
    "RidgeRewardModel": "agents.ope",
    "TabularRewardModel": "agents.ope",
    "cross_fit_rewards": "agents.ope",
    "logged_data_from_panel": "agents.ope.panel",
    "AccuracyConfig": "agents.ope.accuracy",
    "run_ope_accuracy": "agents.ope.accuracy",
    # export and serving
    "export_policy": "agents.export",
    "ExportedPolicy": "agents.serving",
    "score_table": "agents.serving",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agents' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
