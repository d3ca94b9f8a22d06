"""An ensemble of K behavior predictors: a random member per user-step, and their disagreement.

The members share the user split (and so the static encoder and the held-out users) and
differ in their initial weights and minibatch order (``PredictorConfig.member``). In the
simulator each user-step draws its member uniformly from the simulator's own generator, so a
seeded rollout is reproducible; :meth:`PredictorEnsemble.disagreement` is the spread of the
members' expected revenue for the chosen action, the uncertainty a MOPO-style reward penalty
subtracts.

The ensemble offers the carried-state part of :class:`~predictors.models.BehaviorPredictor`
(``initial_state``, ``step``, ``predict_from_state``) plus the attributes the simulator reads,
so the learned shop takes either. Members of the feature families and GRUs run as one stacked
network (:mod:`predictors.models.stacked`): one pass per period for all K.

Saved as a folder with ``ensemble.json`` and one predictor folder per member.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from predictors.errors import CheckpointError, ConfigError
from predictors.io import write_json
from predictors.models.families import N_OUT
from predictors.models.predictor import BehaviorPredictor, Predictions
from predictors.models.stacked import StackedMembers, by_row, can_stack, stack_members

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
        self._stack: StackedMembers | None = None
        #: whether the members run as one stacked network (:mod:`predictors.models.stacked`);
        #: False steps each member with its own modules (the reference path)
        self.stacked = all(m.net_ is not None for m in self.members) and \
            can_stack([m.net_ for m in self.members])
        self._last_outputs: torch.Tensor | None = None
        self._last_disagreement: np.ndarray | None = None

    def _stacked(self) -> StackedMembers:
        if self._stack is None:
            self._stack = stack_members([m.net_ for m in self.members])
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
        """Every member's initial state: one stacked state where the members run as one
        network (:mod:`predictors.models.stacked`), else the members' states concatenated."""
        if not self.stacked:
            return tuple(t for m in self.members for t in m.initial_state(n, static))
        s = np.zeros((n, self.encoder_.n_features), np.float32) if static is None else static
        if s.shape != (n, self.encoder_.n_features):
            raise ValueError(f"`static` must have shape {(n, self.encoder_.n_features)}; "
                             f"got {s.shape}")
        with torch.no_grad():
            return self._stacked().init_state(
                torch.as_tensor(s, dtype=torch.float32).to(self.device_))

    def step(self, state: tuple, raw: np.ndarray, action: np.ndarray) -> tuple:
        """Advance every member's state by one observed period."""
        if not self.stacked:
            return tuple(t for m, s in zip(self.members, self._split(state), strict=True)
                         for t in m.step(s, raw, action))
        action = np.asarray(action)
        if self.none_index_ is not None and len(action) and action.min() < 0:
            action = np.where(action < 0, self.none_index_, action)
        with torch.no_grad():
            return self._stacked().step(
                state, torch.as_tensor(raw, dtype=torch.float32).to(self.device_),
                torch.as_tensor(action, dtype=torch.int64).to(self.device_))

    def _raw_outputs(self, state: tuple) -> torch.Tensor:
        """Every member's raw network outputs by output ``(K, A*6, n)`` (float32, not
        calibrated; see :class:`~predictors.models.stacked.StackedMembers`)."""
        with torch.no_grad():
            if self.stacked:
                return self._stacked().outputs(state)
            return torch.stack([m.net_.readout(s) for m, s in
                                zip(self.members, self._split(state), strict=True)]
                               ).flatten(2).mT

    def _calibrated_all(self, out: torch.Tensor) -> np.ndarray:
        o = by_row(out, len(self.action_names_)).cpu().numpy()
        return np.stack([m._calibrated(x) for m, x in zip(self.members, o, strict=True)])

    def member_outputs(self, state: tuple) -> np.ndarray:
        """Every member's (calibrated) network outputs ``(K, n, A, 6)``."""
        return self._calibrated_all(self._raw_outputs(state))

    def member_predictions(self, state: tuple) -> list[Predictions]:
        """Each member's predictions ``(n, A)`` for the coming period."""
        act = self.members[0].activity_
        return [Predictions.from_outputs(o, self.action_names_, act)
                for o in self.member_outputs(state)]

    def predict_from_state(self, state: tuple, rng: np.random.Generator | None = None,
                           with_spread: bool = True) -> Predictions:
        """Predictions of a member drawn uniformly per row (from ``rng``, else the own one).

        Args:
            state: The members' carried state.
            rng: Generator of the draws (one ``integers(0, K, n)`` call).
            with_spread: Also run every member on every row, for :meth:`disagreement` and
                :attr:`last_disagreement_` (the members' spread for this state). False runs
                only the drawn member's output layers on each row (stacked members; faster),
                and the spread is then not available.
        """
        fast = self.stacked and not with_spread
        out = None if fast else self._raw_outputs(state)  # (K, A*6, n)
        n = self._stacked().n_rows(state) if fast else out.shape[2]
        pick = (rng if rng is not None else self.rng_).integers(0, self.n_members, n)
        idx = torch.as_tensor(pick, device=self.device_)
        with torch.no_grad():
            sel = (self._stacked().picked_outputs(state, idx) if fast
                   else torch.gather(out, 0, idx.expand(1, *out.shape[1:]))[0])
        sel = np.ascontiguousarray(sel.cpu().numpy().T, dtype=np.float64).reshape(n, -1, N_OUT)
        for k, m in enumerate(self.members):  # each row in its member's calibration
            if m.calibration_ is not None and (pick == k).any():
                sel[pick == k] = m.calibration_.apply(sel[pick == k])
        self._last_outputs, self._last_disagreement = out, None
        return Predictions.from_outputs(sel, self.action_names_, self.members[0].activity_)

    @property
    def last_disagreement_(self) -> np.ndarray:
        """``(n, A)`` for the state of the last :meth:`predict_from_state`: the standard
        deviation over members of the expected revenue of each action."""
        if self._last_disagreement is None:
            if self._last_outputs is None:
                raise AttributeError("no spread: call predict_from_state(with_spread=True)")
            o = self._calibrated_all(self._last_outputs)
            self._last_disagreement = _revenue_spread(o[..., 1], o[..., 2], o[..., 3])
        return self._last_disagreement

    def disagreement(self, action: np.ndarray) -> np.ndarray:
        """``(n,)`` the members' spread of expected revenue of ``action[i]`` for row i, for the
        state of the last :meth:`predict_from_state` (= ``last_disagreement_[i, action[i]]``)."""
        if self._last_outputs is None:
            raise RuntimeError("no spread: call predict_from_state(with_spread=True) first")
        out = self._last_outputs
        k, n = out.shape[0], out.shape[2]
        if any(m.calibration_ is not None for m in self.members):
            return self.last_disagreement_[np.arange(n), action]
        # channels 1..3 (purchase logit, log-revenue mean and log-std) of each row's action
        a = torch.as_tensor(np.asarray(action, dtype=np.int64), device=out.device) * N_OUT
        idx = (a + torch.arange(1, 4, device=out.device).unsqueeze(1)).expand(k, 3, n)
        o = torch.gather(out, 1, idx).cpu().numpy().astype(np.float64)  # (K, 3, n)
        return _revenue_spread(o[:, 0], o[:, 1], o[:, 2])

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


def _revenue_spread(purchase_logit: np.ndarray, log_mu: np.ndarray,
                    log_sigma: np.ndarray) -> np.ndarray:
    """Std over the members (axis 0) of ``p_purchase * exp(mu + sigma^2 / 2)``."""
    p_buy = 1.0 / (1.0 + np.exp(-purchase_logit))
    sigma = np.exp(np.clip(log_sigma, -5, 5))
    return (p_buy * np.exp(log_mu + 0.5 * sigma ** 2)).std(axis=0)


def is_ensemble_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a saved :class:`PredictorEnsemble`."""
    return (Path(folder) / ENSEMBLE_FILE).is_file()
