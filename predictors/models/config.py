"""Configuration of a behavior predictor and the one device resolver."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from predictors.config_checks import check_choice, check_int, check_number
from predictors.errors import ConfigError

#: Model families behind the :class:`~predictors.models.BehaviorPredictor` interface.
FAMILIES = ("logistic", "mlp", "gru", "lstm", "transformer", "markov")
#: How the candidate action enters the model.
CONDITIONINGS = ("heads", "embedding")
#: Binary heads, in the order of the model's output channels.
BINARY_HEADS = ("visit", "purchase", "unsubscribe", "churn")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a :class:`torch.device`.

    ``auto`` picks CUDA when it is available, else the CPU.

    Raises:
        ConfigError: The string names no device, or CUDA was asked for but is absent.

    Example:
        >>> resolve_device("cpu").type
        'cpu'
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise ConfigError(f"`device` must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"`device` is {device!r} but CUDA is not available on this machine")
        return torch.device(device)
    raise ConfigError(f"`device` must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}")


@dataclass(frozen=True)
class PredictorConfig:
    """Hyperparameters of a behavior predictor (everything needed to rebuild it).

    Attributes:
        family: One of :data:`FAMILIES`.
        history: Periods of raw history the model reads: the attention window of
            ``transformer`` and the recent-period window of ``logistic``/``mlp``. The recurrent
            families (``gru``, ``lstm``) summarise the whole history in their carried state.
        hidden: Width of the hidden layers / recurrent state.
        layers: Number of hidden (recurrent, attention) layers; ``logistic`` ignores it.
        conditioning: ``heads`` (a shared head plus a per-action offset head on the shared
            representation) or ``embedding`` (an action embedding concatenated to it).
        epochs: Maximum training epochs.
        batch_size: Minibatch size in user-periods (rounded to whole users).
        lr: Adam learning rate.
        weight_decay: L2 penalty (AdamW).
        patience: Early stopping: epochs without validation improvement before stopping.
        val_fraction: Fraction of users held out for validation (early stopping).
        test_fraction: Fraction of users held out for testing (never used in training).
        ipw: Weight each training row by the inverse logged propensity of its action.
        ipw_clip: Largest inverse-propensity weight (weights are normalised to mean 1).
        churn_censor: Churn labels of the last ``churn_censor`` labelled periods are masked
            (right-censoring: a user quiet at the end may come back after the data ends).
        seed: Seed of the split, the initial weights and the minibatch order.
        member: Ensemble member index: offsets the seed of the initial weights and of the
            minibatch order (not of the split), so members share their held-out users.
        dad: Data as Demonstrator rounds after the one-step fit: each round adds a copy of the
            training (and validation) users whose histories, from a random start step on, are
            the model's own draws under the logged actions, labelled with the logged outcomes,
            and continues training on the union (:mod:`predictors.models.dad`). 0: off.
        device: ``auto``, ``cpu`` or ``cuda[:N]`` (training device; inference defaults to CPU).
        num_threads: Torch intra-op threads while training/predicting on CPU (0 = leave as is).
        markov_order: ``markov``: periods whose behavior level (none / visited / carted /
            purchased) enters the discrete state.
        markov_recency_edges: ``markov``: bucket edges of the periods since the last active
            period and since the last purchase (``d < edges[0]``, ..., ``d >= edges[-1]``, never).
        markov_frequency_edges: ``markov``: bucket edges of the number of periods with a
            purchase so far (the F of RFM).
        markov_contact_edges: ``markov``: bucket edges of the contacts received in the last
            ``markov_contact_window`` periods.
        markov_contact_window: ``markov``: periods over which contacts are counted.
        markov_prior: ``markov``: strength (pseudo user-periods) of the Beta/Dirichlet prior
            that shrinks each cell towards its coarser parent; ``0`` picks it per head on the
            validation users from a fixed grid.
        markov_static: ``markov``: add to every head a per-action offset linear in the static
            user features (:mod:`predictors.models.markov_static`), kept per head only where it
            lowers the validation loss; without static features it does nothing.
        markov_static_l2: ``markov``: ridge strength of the per-action static terms; ``0``
            picks it per head on the validation users (no offset is one of the choices).
    """

    family: str = "gru"
    history: int = 8
    hidden: int = 64
    layers: int = 1
    conditioning: str = "heads"
    epochs: int = 30
    batch_size: int = 4096
    lr: float = 3e-3
    weight_decay: float = 1e-5
    patience: int = 3
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    ipw: bool = False
    ipw_clip: float = 20.0
    churn_censor: int = 4
    seed: int = 0
    member: int = 0
    dad: int = 0
    device: str = "auto"
    num_threads: int = 2
    markov_order: int = 1
    markov_recency_edges: tuple[int, ...] = (2, 4, 8, 16)
    markov_frequency_edges: tuple[int, ...] = (1, 2, 4, 8)
    markov_contact_edges: tuple[int, ...] = (1, 2)
    markov_contact_window: int = 4
    markov_prior: float = 0.0
    markov_static: bool = True
    markov_static_l2: float = 0.0

    def __post_init__(self) -> None:
        for name in ("markov_recency_edges", "markov_frequency_edges", "markov_contact_edges"):
            v = getattr(self, name)
            if isinstance(v, (list, tuple)):  # JSON gives lists; keep configs hashable/equal
                object.__setattr__(self, name, tuple(v))
        check_choice(self, "family", FAMILIES)
        check_choice(self, "conditioning", CONDITIONINGS)
        check_int(self, "history", "hidden", "layers", "epochs", "batch_size", "patience",
                  "markov_contact_window", ge=1)
        check_int(self, "markov_order", ge=1, le=6)  # 5**order states
        check_int(self, "churn_censor", "num_threads", "seed", "member", "dad", ge=0)
        for name in ("markov_recency_edges", "markov_frequency_edges", "markov_contact_edges"):
            v = getattr(self, name)
            ok = isinstance(v, tuple) and all(
                isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in v)
            if not ok or list(v) != sorted(set(v)):
                raise ConfigError(f"`{name}` must be strictly increasing integers >= 1; got {v!r}")
        if not isinstance(self.markov_static, bool):
            raise ConfigError(f"`markov_static` must be true or false; got "
                              f"{self.markov_static!r}")
        check_number(self, "markov_static_l2", "markov_prior", "weight_decay", ge=0)
        check_number(self, "lr", gt=0)
        check_number(self, "ipw_clip", ge=1)
        check_number(self, "val_fraction", "test_fraction", ge=0, lt=1)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("`val_fraction` + `test_fraction` must be < 1; got "
                              f"{self.val_fraction} + {self.test_fraction}")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"`device` must be 'auto', 'cpu' or 'cuda[:N]'; got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PredictorConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown predictor config keys {unknown}; known are {sorted(known)}")
        return cls(**d)
