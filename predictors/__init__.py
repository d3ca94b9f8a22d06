"""nudgegym.predictors: data contract, loading, features and behavior models (lowest layer)."""

from predictors.config_checks import check_choice, check_int, check_number
from predictors.contract import ActionSpec, DatasetSpec, default_catalog, read_spec
from predictors.current import current_observations
from predictors.cutoff import cut_dataset
from predictors.dataset import Dataset, find_table, open_dataset, write_dataset
from predictors.errors import (
    CheckpointError,
    ConfigError,
    DataValidationError,
    NudgeGymError,
    Problem,
)
from predictors.features import (
    FeatureConfig,
    HistoryTracker,
    observation_names,
    observations_from_panel,
)
from predictors.importers import (
    IMPORTERS,
    ImportStats,
    TransactionsConfig,
    import_hillstrom,
    import_online_retail,
    import_taobao,
    import_transactions,
)
from predictors.loaders import load_dataset, load_events, load_interventions, load_users
from predictors.panel import PANEL_COLUMNS, build_panel, dataset_summary, panel_summary
from predictors.synthetic import (
    CampaignPolicy,
    GenerateConfig,
    StartStates,
    UniformPolicy,
    World,
    WorldConfig,
    WorldState,
    generate,
    load_world,
    read_start_states,
    sample_start_states,
    true_policy_value,
)
from predictors.validate import check_dataset, validate_dataset

__version__ = "0.1.0"

# The behavior models need torch; they load on first use, so that the data tools and the
# onnxruntime-only serving path start without importing it (PEP 562 lazy attributes).
_LAZY = {"FAMILIES", "BehaviorPredictor", "PredictorConfig", "Predictions", "resolve_device"}


def __getattr__(name: str):
    if name in _LAZY:
        from predictors import models

        return getattr(models, name)
    raise AttributeError(f"module 'predictors' has no attribute {name!r}")

__all__ = [
    "ActionSpec",
    "CheckpointError",
    "ConfigError",
    "DataValidationError",
    "Dataset",
    "DatasetSpec",
    "FeatureConfig",
    "HistoryTracker",
    "NudgeGymError",
    "Problem",
    "check_choice",
    "check_int",
    "check_number",
    "default_catalog",
    "find_table",
    "observation_names",
    "observations_from_panel",
    "current_observations",
    "cut_dataset",
    "open_dataset",
    "read_spec",
    "write_dataset",
    "PANEL_COLUMNS",
    "build_panel",
    "check_dataset",
    "load_dataset",
    "load_events",
    "load_world",
    "load_interventions",
    "load_users",
    "panel_summary",
    "dataset_summary",
    "validate_dataset",
    "IMPORTERS",
    "ImportStats",
    "TransactionsConfig",
    "import_hillstrom",
    "import_online_retail",
    "import_taobao",
    "import_transactions",
    "FAMILIES",
    "BehaviorPredictor",
    "PredictorConfig",
    "Predictions",
    "resolve_device",
    # synthetic shop
    "CampaignPolicy",
    "GenerateConfig",
    "StartStates",
    "UniformPolicy",
    "World",
    "WorldConfig",
    "WorldState",
    "generate",
    "read_start_states",
    "sample_start_states",
    "true_policy_value",
]
