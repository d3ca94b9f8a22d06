"""nudgegym.agents: policies, training, evaluation, off-policy evaluation, export and the CLI."""

from agents.baselines import (
    RULES,
    EmailCappedPolicy,
    GreedyUpliftPolicy,
    RFMPolicy,
    RulePolicy,
    WinbackPolicy,
    make_rule,
    parse_rule,
)

__all__: list[str] = [
    # rule baselines
    "RULES",
    "EmailCappedPolicy",
    "GreedyUpliftPolicy",
    "RFMPolicy",
    "RulePolicy",
    "WinbackPolicy",
    "make_rule",
    "parse_rule",
]
