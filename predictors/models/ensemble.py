"""An ensemble of K behavior predictors: a random member per user-step, and their disagreement.

The members share the user split (and so the static encoder and the held-out users) and
differ in their initial weights and minibatch order (``PredictorConfig.member``). In the
simulator each user-step draws its member uniformly from the simulator's own generator, so a
seeded rollout is reproducible; :meth:`PredictorEnsemble.disagreement` is the spread of the
members' expected revenue for the chosen action, the uncertainty a MOPO-style reward penalty
subtracts.

The ensemble offers the carried-state part of :class:`~predictors.models.BehaviorPredictor`
(``initial_state``, ``step``, ``predict_from_state``) plus the attributes the simulator reads,
so the learned shop takes either.

Saved as a folder with ``ensemble.json`` and one predictor folder per member.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from predictors.errors import CheckpointError, ConfigError
from predictors.io import write_json
from predictors.models.predictor import BehaviorPredictor, Predictions

ENSEMBLE_FILE = "ensemble.json"
_FIELDS = ("p_visit", "p_purchase", "revenue_mu", "revenue_sigma", "p_unsubscribe", "p_churn")


class PredictorEnsemble:
    """K fitted predictors over the same catalog and split.

    Args:
        members: At least two fitted predictors.
        seed: Seed of the member draws when no generator is passed.

    Raises:
        ConfigError: Fewer than two members, or members with different actions or splits.
    """

    def __init__(self, members: list[BehaviorPredictor], seed: int = 0) -> None:
        if len(members) < 2:
            raise ConfigError(f"an ensemble needs at least 2 members; got {len(members)}")
        first = members[0]
        for k, m in enumerate(members[1:], 1):
            if m.action_names_ != first.action_names_:
                raise ConfigError(f"ensemble member {k} has actions {m.action_names_}, "
                                  f"member 0 {first.action_names_}")
            if (first.split_ is not None and m.split_ is not None
                    and not first.split_.equals(m.split_)):
                raise ConfigError(f"ensemble member {k} was fitted on another user split")
        self.members = list(members)
        self.rng_ = np.random.default_rng(seed)
        self.config = first.config
        self.action_names_ = first.action_names_
        self.none_index_ = first.none_index_
        self.encoder_ = first.encoder_
        self.split_ = first.split_
        self.device_ = first.device_
        self._sizes = [len(m.initial_state(1)) for m in self.members]

    @property
    def n_members(self) -> int:
        """K."""
        return len(self.members)

    def _split(self, state: tuple) -> list[tuple]:
        out, i = [], 0
        for n in self._sizes:
            out.append(tuple(state[i:i + n]))
            i += n
        return out

    def initial_state(self, n: int, static: np.ndarray | None = None) -> tuple:
        """Every member's initial state, concatenated."""
        return tuple(t for m in self.members for t in m.initial_state(n, static))

    def step(self, state: tuple, raw: np.ndarray, action: np.ndarray) -> tuple:
        """Advance every member's state by one observed period."""
        return tuple(t for m, s in zip(self.members, self._split(state), strict=True)
                     for t in m.step(s, raw, action))

    def member_predictions(self, state: tuple) -> list[Predictions]:
        """Each member's predictions ``(n, A)`` for the coming period."""
        return [m.predict_from_state(s) for m, s in
                zip(self.members, self._split(state), strict=True)]

    def predict_from_state(self, state: tuple,
                           rng: np.random.Generator | None = None) -> Predictions:
        """Predictions of a member drawn uniformly per row (from ``rng``, else the own one).

        The drawn members' spread is kept in :attr:`last_disagreement_` ``(n, A)``: the
        standard deviation over members of the expected revenue of each action.
        """
        preds = self.member_predictions(state)
        n = preds[0].p_visit.shape[0]
        pick = (rng if rng is not None else self.rng_).integers(0, self.n_members, n)
        rows = np.arange(n)
        chosen = {f: np.stack([getattr(p, f) for p in preds])[pick, rows] for f in _FIELDS}
        self.last_disagreement_ = np.stack([p.expected_revenue for p in preds]).std(axis=0)
        return Predictions(self.action_names_, **chosen)

    def to_cpu(self) -> PredictorEnsemble:
        """Move every member to the CPU."""
        for m in self.members:
            m.to_cpu()
        self.device_ = torch.device("cpu")
        return self

    def save(self, folder: str | Path) -> Path:
        """Write ``ensemble.json`` and ``member_K/`` folders."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for k, m in enumerate(self.members):
            m.save(folder / f"member_{k}")
        write_json(folder / ENSEMBLE_FILE, {"members": [f"member_{k}" for k in
                                                        range(self.n_members)]})
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu", seed: int = 0) -> PredictorEnsemble:
        """Rebuild a saved ensemble."""
        path = Path(folder) / ENSEMBLE_FILE
        try:
            names = json.loads(path.read_text())["members"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: not a predictor ensemble ({e})") from None
        return cls([BehaviorPredictor.load(Path(folder) / n, device=device) for n in names],
                   seed=seed)


def is_ensemble_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a saved :class:`PredictorEnsemble`."""
    return (Path(folder) / ENSEMBLE_FILE).is_file()
