"""The policy that wrote a dataset's logs, as a policy over observations.

Where a method needs the logging policy's probability of EVERY action at a state the logs may
not hold (the support constraint of the learned shop's safe branches,
:mod:`agents.shop_branches`), the logged propensities are not enough: they give only the
probability of the action that was taken, at the logged states. :func:`logging_rule` names
that policy for a dataset:

* a synthetic shop records how it logged (``spec.extra["generator"]["logging"]``): its
  campaign is ``rule:campaign`` (the same rule, exploration included) and uniform logging is
  ``rule:random``;
* any other dataset (a shop's own send log) gets ``rule:logged``, :class:`LoggedPolicy`: a
  classifier of the logged action on the observation features
  (:func:`predictors.propensity.fit_logging_model`), fitted on every logged period. It
  assumes what every estimated propensity assumes (the logging policy's inputs are in the
  observation; :data:`predictors.propensity.ASSUMPTION`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import Catalog, RulePolicy
from predictors import DatasetSpec, FeatureConfig, build_panel, open_dataset
from predictors import observation_names as base_observation_names
from predictors.propensity import PropensityConfig, fit_logging_model

__all__ = ["LoggedPolicy", "logging_rule"]

#: The rule of each synthetic logging option (``nudgegym generate --logging``).
SYNTHETIC_LOGGING = {"campaign": "rule:campaign", "uniform": "rule:random"}


def logging_rule(spec: DatasetSpec) -> str:
    """The rule that logged the dataset of ``spec`` (see the module docstring).

    Example:
        >>> from predictors import default_catalog
        >>> spec = DatasetSpec(actions=default_catalog(),
        ...                    extra={"generator": {"logging": "uniform"}})
        >>> logging_rule(spec), logging_rule(DatasetSpec(actions=default_catalog()))
        ('rule:random', 'rule:logged')
    """
    generator = (spec.extra or {}).get("generator")
    logging = generator.get("logging") if isinstance(generator, dict) else None
    return SYNTHETIC_LOGGING.get(logging, "rule:logged")


class LoggedPolicy(RulePolicy):
    """The logging policy estimated from the logs: the action distribution of a classifier of
    the logged action on the observation features (stochastic, like the policy it models).

    Args:
        spec: The dataset spec or its action catalog.
        observation_names: Observation column names of the env the policy acts in (it reads
            the base observation features by name; static features are ignored).
        model: A fitted scikit-learn classifier of the catalog action index on the base
            observation features (``predict_proba``, ``classes_``).
        feature_config: The observation options the model was fitted with.
    """

    def __init__(self, spec: Catalog, observation_names: Sequence[str], model: Any,
                 feature_config: FeatureConfig | None = None) -> None:
        super().__init__(spec, observation_names)
        self.model = model
        self.classes = np.asarray(model.classes_, np.int64)
        self._cols = np.array([self._require(n)
                               for n in base_observation_names(feature_config)])

    @classmethod
    def from_dataset(cls, data: str | Path, observation_names: Sequence[str],
                     feature_config: FeatureConfig | None = None, model: str = "boosting",
                     seed: int = 0, max_rows: int = 200_000) -> LoggedPolicy:
        """Fit on every logged period of a dataset folder.

        Raises:
            ValueError: The dataset logs no choice of action (no interventions table, or one
                action only), or a bad option.
        """
        ds = open_dataset(data)
        cfg = PropensityConfig(model=model, seed=seed, max_rows=max_rows)
        fitted = fit_logging_model(build_panel(ds), ds.spec, cfg, feature_config)
        return cls(ds.spec, observation_names, fitted, feature_config)

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float64)[:, self._cols]
        probs = np.zeros((len(x), self.n_actions))
        probs[:, self.classes] = self.model.predict_proba(x)
        return probs / probs.sum(axis=1, keepdims=True)
