"""The tuned rule: a parametric rule family over recency, frequency, monetary and contact gap.

A hand-set rule (``rule:email_capped``) is a weak yardstick; :class:`TunedRulePolicy` is the
family a growth team would tune by A/B tests, and :mod:`agents.tune_rule` searches it in the
environment the RL is trained in. A user is

1. *lapsed* when the periods since the last purchase are ``>= lapse`` (users who never
   purchased count as lapsed), else *active*;
2. *eligible* when the purchase frequency is ``>= min_frequency`` (purchases per observed
   period) and the mean basket is ``>= min_monetary`` (currency); ineligible users get ``none``;
3. contacted with the segment's action (``active`` / ``lapsed``) when the last contact is at
   least the segment's gap (``active_gap`` / ``lapsed_gap``) periods ago, else ``none``;
4. an action whose channel the user unsubscribed from is replaced by ``fallback`` (``none`` by
   default; ``fallback`` itself is dropped when its channel is unsubscribed too).

Written ``rule:tuned:active=email,active_gap=4,lapse=8,lapsed=coupon_10,lapsed_gap=4,...``;
omitted parameters take the defaults below (which equal ``rule:email_capped``).
Reads ``recency``, ``frequency``, ``monetary``, ``since_contact``, ``email_unsubscribed`` and
``push_unsubscribed`` by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from agents.baselines import Catalog, RulePolicy
from predictors import FeatureConfig, check_int, check_number

__all__ = ["TunedRuleParams", "TunedRulePolicy"]


@dataclass(frozen=True)
class TunedRuleParams:
    """Parameters of :class:`TunedRulePolicy` (see the module docstring for their meaning).

    Attributes:
        active: Action for users who purchased within ``lapse`` periods.
        active_gap: Minimum periods since the last contact before contacting an active user.
        lapse: Periods without purchase from which a user is lapsed (``1 <= lapse``).
        lapsed: Action for lapsed users.
        lapsed_gap: Minimum periods since the last contact for a lapsed user.
        min_frequency: Purchases per observed period a user needs to be contacted at all.
        min_monetary: Mean basket (currency) a user needs to be contacted at all.
        fallback: Action used when the chosen action's channel is unsubscribed.
    """

    active: str = "email"
    active_gap: int = 4
    lapse: int = 26
    lapsed: str = "email"
    lapsed_gap: int = 4
    min_frequency: float = 0.0
    min_monetary: float = 0.0
    fallback: str = "none"

    def __post_init__(self) -> None:
        check_int(self, "active_gap", "lapse", "lapsed_gap", ge=1)
        check_number(self, "min_frequency", "min_monetary", ge=0)

    def rule_string(self) -> str:
        """The CLI name, ``rule:tuned:key=value,...`` (every parameter, in field order)."""
        items = []
        for f in fields(self):
            v = getattr(self, f.name)
            items.append(f"{f.name}={_fmt(v)}")
        return "rule:tuned:" + ",".join(items)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:g}" if v != int(v) else f"{v:.1f}"
    return str(v)


class TunedRulePolicy(RulePolicy):
    """The tuned-rule family (module docstring), one deterministic action per user.

    Args:
        spec: The catalog (needs ``none``).
        observation_names: Observation column names.
        feature_config: The observation options (gives ``recency_cap``).
        **params: Fields of :class:`TunedRuleParams`.

    Example:
        >>> from predictors import default_catalog, observation_names
        >>> names = observation_names()
        >>> obs = np.zeros((2, len(names)), np.float32)
        >>> obs[:, names.index("since_contact")] = 5 / 26
        >>> obs[:, names.index("frequency")] = 0.2
        >>> obs[1, names.index("recency")] = 10 / 26
        >>> pi = TunedRulePolicy(default_catalog(), names, lapse=8, lapsed="coupon_10")
        >>> pi.act(obs, np.random.default_rng(0))
        array([1, 3])
    """

    def __init__(self, spec: Catalog, observation_names: Sequence[str],
                 feature_config: FeatureConfig | None = None, **params: object) -> None:
        super().__init__(spec, observation_names)
        try:
            self.params = TunedRuleParams(**params)  # type: ignore[arg-type]
        except TypeError as e:
            known = [f.name for f in fields(TunedRuleParams)]
            raise ValueError(f"rule 'tuned': {e}; its parameters are {known}") from None
        self.cap = (feature_config or FeatureConfig()).recency_cap
        p = self.params
        self.none = self.action_index("none")
        self._active, self._lapsed = self.action_index(p.active), self.action_index(p.lapsed)
        self._fallback = self.action_index(p.fallback)
        self._channel = np.array([a.channel or "" for a in self.actions])
        for name in ("recency", "frequency", "monetary", "since_contact",
                     "email_unsubscribed", "push_unsubscribed"):
            self._require(name)

    @property
    def name(self) -> str:
        """The rule's CLI name with every parameter."""
        return self.params.rule_string()

    def _blocked(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Rows whose action goes through a channel the user unsubscribed from."""
        ch = self._channel[action]
        return (((ch == "email") & (self.column(obs, "email_unsubscribed") > 0.5))
                | ((ch == "push") & (self.column(obs, "push_unsubscribed") > 0.5)))

    def decide(self, obs: np.ndarray) -> np.ndarray:
        """Action index per row ``(n,)``."""
        p = self.params
        obs = np.asarray(obs)
        since_buy = np.rint(self.column(obs, "recency") * self.cap)
        since_contact = np.rint(self.column(obs, "since_contact") * self.cap)
        never = self.column(obs, "frequency") <= 0
        lapsed = (since_buy >= p.lapse) | never
        eligible = ((self.column(obs, "frequency") >= p.min_frequency)
                    & (np.expm1(self.column(obs, "monetary")) >= p.min_monetary))
        gap = np.where(lapsed, p.lapsed_gap, p.active_gap)
        action = np.where(lapsed, self._lapsed, self._active)
        action = np.where(eligible & (since_contact >= gap), action, self.none)
        blocked = self._blocked(obs, action)
        action = np.where(blocked, self._fallback, action)
        action = np.where(blocked & self._blocked(obs, action), self.none, action)
        return action.astype(np.int64)

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        return self._one_hot(self.decide(obs))


def params_dict(params: TunedRuleParams) -> dict[str, object]:
    """The parameters as a JSON-ready dict."""
    return asdict(params)
