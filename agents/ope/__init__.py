"""Off-policy evaluation: logged data, one-step and sequential estimators, reward/Q models."""

from agents.ope.base import (
    BOOTSTRAP_SCHEMES,
    BaseEstimator,
    Interval,
    WeightDegeneracyWarning,
    effective_sample_size,
    weighted_bootstrap,
)
from agents.ope.choice import EstimatorChoice, choose_estimator
from agents.ope.data import LoggedData, Trajectories, target_action_dist
from agents.ope.fqe import FittedQ, FQEConfig, cross_fit_q, fit_fqe
from agents.ope.inputs import action_dist_at_positions, logged_data_from_arrays
from agents.ope.marginal import (
    MARGINAL_ESTIMATORS,
    JointReplicates,
    MarginalConfig,
    joint_replicates,
    marginal_interval,
)
from agents.ope.one_step import DM, DR, IPS, SNDR, SNIPS, OneStepEstimator, SwitchDR
from agents.ope.reward_model import (
    RewardModel,
    RidgeRewardModel,
    TabularRewardModel,
    cross_fit_rewards,
    make_folds,
)
from agents.ope.sequential import (
    FQE,
    PDIS,
    WPDIS,
    SequentialDR,
    SequentialEstimator,
)

__all__ = [
    "EstimatorChoice",
    "choose_estimator",
    "MARGINAL_ESTIMATORS",
    "JointReplicates",
    "MarginalConfig",
    "joint_replicates",
    "marginal_interval",
    "action_dist_at_positions",
    "logged_data_from_arrays",
    "DM",
    "FQE",
    "PDIS",
    "WPDIS",
    "FQEConfig",
    "FittedQ",
    "SequentialDR",
    "SequentialEstimator",
    "cross_fit_q",
    "fit_fqe",
    "DR",
    "IPS",
    "SNDR",
    "SNIPS",
    "BaseEstimator",
    "Interval",
    "LoggedData",
    "OneStepEstimator",
    "RewardModel",
    "RidgeRewardModel",
    "SwitchDR",
    "TabularRewardModel",
    "Trajectories",
    "WeightDegeneracyWarning",
    "cross_fit_rewards",
    "effective_sample_size",
    "make_folds",
    "BOOTSTRAP_SCHEMES",
    "weighted_bootstrap",
    "target_action_dist",
]
