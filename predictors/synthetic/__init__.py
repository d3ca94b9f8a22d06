"""The synthetic shop: a world with known truth, its logging policies, generator and rollouts."""

from predictors.synthetic.generate import (
    GenerateConfig,
    generate,
    read_start_states,
    read_world,
    sample_start_users,
)
from predictors.synthetic.logging_policy import CampaignPolicy, UniformPolicy, make_logging_policy
from predictors.synthetic.rollout import (
    StartStates,
    greedy_policy,
    policy_rewards,
    sample_start_states,
    schedule_policy,
    segment_schedule_policy,
    true_policy_value,
)
from predictors.synthetic.world import (
    Outcomes,
    SegmentProfile,
    World,
    WorldConfig,
    WorldState,
    default_segments,
)
from predictors.synthetic.world_file import PRESETS, WorldFileError, load_world, world_from_dict

__all__ = [
    "PRESETS",
    "CampaignPolicy",
    "GenerateConfig",
    "Outcomes",
    "SegmentProfile",
    "StartStates",
    "UniformPolicy",
    "World",
    "WorldConfig",
    "WorldFileError",
    "WorldState",
    "default_segments",
    "generate",
    "greedy_policy",
    "load_world",
    "make_logging_policy",
    "policy_rewards",
    "read_start_states",
    "read_world",
    "sample_start_states",
    "sample_start_users",
    "schedule_policy",
    "segment_schedule_policy",
    "true_policy_value",
    "world_from_dict",
]
