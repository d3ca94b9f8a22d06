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
from predictors.models.shared_state import SharedStateMembers

ENSEMBLE_FILE = "ensemble.json"


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
        self._stack: SharedStateMembers | None = None
        self.shared_state = all(m.net_ is not None for m in self.members) and \
            SharedStateMembers.supports([m.net_ for m in self.members])

    def _shared(self) -> SharedStateMembers:
        if self._stack is None:
            self._stack = SharedStateMembers([m.net_ for m in self.members])
        return self._stack

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
        """Every member's initial state: one shared state for the feature families (logistic,
        mlp; :mod:`predictors.models.shared_state`), else the members' states concatenated."""
        if not self.shared_state:
            return tuple(t for m in self.members for t in m.initial_state(n, static))
        s = np.zeros((n, self.encoder_.n_features), np.float32) if static is None else static
        if s.shape != (n, self.encoder_.n_features):
            raise ValueError(f"`static` must have shape {(n, self.encoder_.n_features)}; "
                             f"got {s.shape}")
        with torch.no_grad():
            return self._shared().init_state(
                torch.as_tensor(s, dtype=torch.float32).to(self.device_))

    def step(self, state: tuple, raw: np.ndarray, action: np.ndarray) -> tuple:
        """Advance every member's state by one observed period."""
        if not self.shared_state:
            return tuple(t for m, s in zip(self.members, self._split(state), strict=True)
                         for t in m.step(s, raw, action))
        action = np.asarray(action)
        if self.none_index_ is not None and len(action) and action.min() < 0:
            action = np.where(action < 0, self.none_index_, action)
        with torch.no_grad():
            return self._shared().step(
                state, torch.as_tensor(raw, dtype=torch.float32).to(self.device_),
                torch.as_tensor(action, dtype=torch.int64).to(self.device_))

    def member_outputs(self, state: tuple) -> np.ndarray:
        """Every member's (calibrated) network outputs ``(K, n, A, 6)``."""
        with torch.no_grad():
            if self.shared_state:
                out = self._shared().readouts(state)
            else:
                out = torch.stack([m.net_.readout(s) for m, s in
                                   zip(self.members, self._split(state), strict=True)])
        out = out.cpu().numpy()
        return np.stack([m._calibrated(o) for m, o in zip(self.members, out, strict=True)])

    def member_predictions(self, state: tuple) -> list[Predictions]:
        """Each member's predictions ``(n, A)`` for the coming period."""
        act = self.members[0].activity_
        return [Predictions.from_outputs(o, self.action_names_, act)
                for o in self.member_outputs(state)]

    def predict_from_state(self, state: tuple,
                           rng: np.random.Generator | None = None) -> Predictions:
        """Predictions of a member drawn uniformly per row (from ``rng``, else the own one).

        The drawn members' spread is kept in :attr:`last_disagreement_` ``(n, A)``: the
        standard deviation over members of the expected revenue of each action.
        """
        out = self.member_outputs(state)
        n = out.shape[1]
        pick = (rng if rng is not None else self.rng_).integers(0, self.n_members, n)
        p_buy = 1.0 / (1.0 + np.exp(-out[..., 1]))
        sigma = np.exp(np.clip(out[..., 3], -5, 5))
        self.last_disagreement_ = (p_buy * np.exp(out[..., 2] + 0.5 * sigma ** 2)).std(axis=0)
        return Predictions.from_outputs(out[pick, np.arange(n)], self.action_names_,
                                        self.members[0].activity_)

    def to_cpu(self) -> PredictorEnsemble:
        """Move every member to the CPU."""
        for m in self.members:
            m.to_cpu()
        self.device_ = torch.device("cpu")
        self._stack = None
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
