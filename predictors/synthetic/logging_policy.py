"""Logging policies of the synthetic shop: uniform and a CRM-style campaign rule.

Both expose ``action_probabilities(obs, control) -> (n, n_actions)`` and
``act(obs, rng, control) -> (n,)`` over the observation of :mod:`predictors.features`; every
probability is known, so logged propensities are exact. ``control`` marks the universal control
group (users who are never contacted: ``none`` with probability 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictors.contract import ActionSpec, default_catalog
from predictors.features import FeatureConfig, observation_names


def _with_control(probs: np.ndarray, control: np.ndarray | None) -> np.ndarray:
    if control is not None:
        control = np.asarray(control, dtype=bool)
        probs[control] = 0.0
        probs[control, 0] = 1.0
    return probs


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one action per row of ``probs`` (n, n_actions) by inverse CDF."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cdf[:, -1:]
    return np.minimum((u >= cdf).sum(axis=1), probs.shape[1] - 1)


@dataclass(frozen=True)
class UniformPolicy:
    """Every action equally likely (the control group still gets ``none``).

    Attributes:
        n_actions: Size of the catalog.
    """

    n_actions: int = 5

    def action_probabilities(self, obs: np.ndarray,
                             control: np.ndarray | None = None) -> np.ndarray:
        """Uniform probabilities, shape (n, n_actions)."""
        probs = np.full((len(obs), self.n_actions), 1.0 / self.n_actions)
        return _with_control(probs, control)

    def act(self, obs: np.ndarray, rng: np.random.Generator,
            control: np.ndarray | None = None) -> np.ndarray:
        """Sampled actions, shape (n,)."""
        return sample_actions(self.action_probabilities(obs, control), rng)


@dataclass(frozen=True)
class CampaignPolicy:
    """A CRM team's targeting rule mixed with uniform exploration.

    The rule, on the observable history: lapsed buyers (no purchase for ``winback_after``
    periods of an observed history at least that long, and no coupon in the last 8) get
    ``coupon_10``; otherwise users not contacted for ``newsletter_every`` periods get ``email``
    (``push`` once email is unsubscribed); the rest get ``none``. With probability
    ``epsilon`` the action is drawn uniformly instead, so every
    probability is at least ``epsilon / n_actions``.

    Attributes:
        actions: The catalog (needs ``none``, ``email``, ``push``, ``coupon_10``).
        epsilon: Exploration share.
        winback_after: Periods without purchase before a win-back coupon.
        newsletter_every: Periods between newsletters.
        features: Feature options of the observations it reads.

    Example:
        >>> pol = CampaignPolicy()
        >>> obs = np.zeros((3, len(observation_names())), dtype=np.float32)
        >>> pol.action_probabilities(obs, control=np.array([False, False, True]))[2].tolist()
        [1.0, 0.0, 0.0, 0.0, 0.0]
    """

    actions: tuple[ActionSpec, ...] = default_catalog()
    epsilon: float = 0.25
    winback_after: int = 6
    newsletter_every: int = 2
    features: FeatureConfig = FeatureConfig()

    def __post_init__(self) -> None:
        if not (0.0 < self.epsilon <= 1.0):
            raise ValueError(f"CampaignPolicy.epsilon must be in (0, 1]; got {self.epsilon!r}")
        names = [a.name for a in self.actions]
        missing = {"none", "email", "push", "coupon_10"} - set(names)
        if missing:
            raise ValueError(f"CampaignPolicy needs actions {sorted(missing)}; got {names}")

    @property
    def n_actions(self) -> int:
        """Size of the catalog."""
        return len(self.actions)

    def rule(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic targeting rule's action per user, shape (n,)."""
        col = {n: i for i, n in enumerate(observation_names(self.features))}
        idx = {a.name: i for i, a in enumerate(self.actions)}
        cap = self.features.recency_cap
        recency = obs[:, col["recency"]] * cap
        since_contact = obs[:, col["since_contact"]] * cap
        tenure = obs[:, col["tenure"]] * self.features.tenure_cap
        lapsed = ((recency >= self.winback_after - 1e-4) & (tenure >= self.winback_after - 1e-4)
                  & (obs[:, col["coupons_8"]] == 0))
        email_off = obs[:, col["email_unsubscribed"]] > 0.5
        newsletter = np.where(email_off, idx["push"], idx["email"])
        due = since_contact >= self.newsletter_every - 1e-4
        out = np.where(due, newsletter, idx["none"])
        return np.where(lapsed & ~email_off, idx["coupon_10"], out)

    def action_probabilities(self, obs: np.ndarray,
                             control: np.ndarray | None = None) -> np.ndarray:
        """Mixture of the rule and uniform exploration, shape (n, n_actions)."""
        probs = np.full((len(obs), self.n_actions), self.epsilon / self.n_actions)
        probs[np.arange(len(obs)), self.rule(obs)] += 1.0 - self.epsilon
        return _with_control(probs, control)

    def act(self, obs: np.ndarray, rng: np.random.Generator,
            control: np.ndarray | None = None) -> np.ndarray:
        """Sampled actions, shape (n,)."""
        return sample_actions(self.action_probabilities(obs, control), rng)


def make_logging_policy(name: str,
                        actions: tuple[ActionSpec, ...]) -> UniformPolicy | CampaignPolicy:
    """``uniform`` or ``campaign`` logging policy over ``actions``."""
    if name == "uniform":
        return UniformPolicy(len(actions))
    if name == "campaign":
        return CampaignPolicy(actions)
    raise ValueError(f"`logging` must be 'campaign' or 'uniform'; got {name!r}")
