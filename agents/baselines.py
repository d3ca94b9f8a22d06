"""Rule-based baseline policies: the bar a learned policy must clear.

Every rule is a :class:`~agents.policy.BasePolicy` that reads the observation BY NAME: the
constructor takes ``observation_names`` (the env's or the dataset's) and looks up the columns it
needs, so the same rule runs on the learned shop (observation + static features), the true
synthetic world (observation only) and logged panels.

Rules (CLI names after ``rule:``):

=============== ==========================================================================
``never``       never intervene (``none``)
``always:A``    always action ``A`` (e.g. ``always:email``)
``random``      uniform over the allowed actions
``winback``     a coupon to users who have not purchased for ``k`` periods, else ``none``
``rfm``         recency/frequency/monetary segments, one action per segment
``email_capped`` an e-mail when the last contact is at least ``gap`` periods ago
``greedy``      myopic uplift: per user the action of highest estimated one-period
                reward ``E[revenue - cost | obs, action]``
``tuned``       the tuned-rule family (:mod:`agents.tuned_rule`; searched by
                ``nudgegym tune-rule``)
``campaign``    the synthetic shop's logging rule (targeting + ``epsilon`` exploration,
                no control group): the logging policy V_logging refers to
``logged``      the logging policy estimated from a dataset's logs
                (:class:`agents.logged_policy.LoggedPolicy`)
=============== ==========================================================================

Greedy's reward model (a choice, documented here): the policy interface only sees the
observation, so :class:`GreedyUpliftPolicy` fits one weighted ridge regression per action of the
logged one-period reward (revenue - send cost - redeemed discount) on the observation features,
with inverse-propensity weights (clipped) so the logging policy's targeting does not bias the
comparison between actions. The behavior predictor's expected revenue would need the predictor's
carried state, which the observation does not hold; the ridge model also runs unchanged in the
true world env.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.policy import BasePolicy, FixedActionPolicy, UniformRandomPolicy, apply_action_mask
from predictors import (
    ActionSpec,
    CampaignPolicy,
    DatasetSpec,
    FeatureConfig,
    build_panel,
    observations_from_panel,
    open_dataset,
)
from predictors import (
    observation_names as base_observation_names,
)

__all__ = [
    "RULES",
    "EmailCappedPolicy",
    "GreedyUpliftPolicy",
    "RFMPolicy",
    "RulePolicy",
    "WinbackPolicy",
    "CampaignRulePolicy",
    "logged_rewards",
    "make_rule",
    "parse_rule",
]

Catalog = DatasetSpec | Sequence[ActionSpec]


def _catalog(spec: Catalog) -> tuple[ActionSpec, ...]:
    return tuple(spec.actions if isinstance(spec, DatasetSpec) else spec)


class RulePolicy(BasePolicy):
    """Base of the rules: holds the catalog and finds observation columns by name.

    Args:
        spec: The dataset spec or its action catalog.
        observation_names: Names of the observation columns, in order.
    """

    def __init__(self, spec: Catalog, observation_names: Sequence[str]) -> None:
        self.actions = _catalog(spec)
        super().__init__(len(self.actions))
        self.action_names = [a.name for a in self.actions]
        self.observation_names = list(observation_names)
        self._index = {n: i for i, n in enumerate(self.observation_names)}

    def column(self, obs: np.ndarray, name: str) -> np.ndarray:
        """The column ``name`` of ``obs`` ``(n, d)`` as float64 ``(n,)``."""
        return np.asarray(obs[:, self._require(name)], dtype=np.float64)

    def _require(self, name: str) -> int:
        if name not in self._index:
            raise ValueError(f"{type(self).__name__} reads the observation column {name!r}, "
                             f"which is not in `observation_names` {self.observation_names}")
        return self._index[name]

    def action_index(self, name: str) -> int:
        """Catalog index of the action ``name``."""
        if name not in self.action_names:
            raise ValueError(f"unknown action {name!r}; the catalog has {self.action_names}")
        return self.action_names.index(name)

    def _one_hot(self, action: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(action), self.n_actions))
        probs[np.arange(len(action)), action] = 1.0
        return probs


class WinbackPolicy(RulePolicy):
    """Win-back: ``action`` (a coupon) when the user has not purchased for ``k`` periods.

    Reads ``recency`` (periods since the last purchase / ``recency_cap``) and ``tenure``.

    Args:
        spec: The catalog.
        observation_names: Observation column names.
        k: Periods without purchase that trigger the action (``1 <= k <= recency_cap``).
        action: The action sent (default ``coupon_10``).
        include_never: Also target users who never purchased (recency 1).
        feature_config: The observation options (gives ``recency_cap``).

    Example:
        >>> from predictors import default_catalog, observation_names
        >>> names = observation_names()
        >>> obs = np.zeros((2, len(names)), np.float32)
        >>> obs[0, names.index("recency")] = 8 / 26
        >>> WinbackPolicy(default_catalog(), names, k=6).act(obs, np.random.default_rng(0))
        array([3, 0])
    """

    def __init__(self, spec: Catalog, observation_names: Sequence[str], k: int = 6,
                 action: str = "coupon_10", include_never: bool = True,
                 feature_config: FeatureConfig | None = None) -> None:
        super().__init__(spec, observation_names)
        self.cap = (feature_config or FeatureConfig()).recency_cap
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= self.cap:
            raise ValueError(f"`k` must be an int in [1, {self.cap}]; got {k!r}")
        self.k, self.include_never = int(k), bool(include_never)
        self.action = self.action_index(action)
        self.none = self.action_index("none")
        self._require("recency")

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        periods = np.rint(self.column(obs, "recency") * self.cap)
        lapsed = periods >= self.k
        if not self.include_never:
            lapsed &= self.column(obs, "frequency") > 0
        return self._one_hot(np.where(lapsed, self.action, self.none))


class RFMPolicy(RulePolicy):
    """RFM segments, one action each.

    Segments (first match wins): ``active`` (purchased within ``recent`` periods) ->
    ``active_action``; ``at_risk`` (not active, but ``frequency >= frequent`` purchases per
    period or mean basket ``>= high_value``) -> ``at_risk_action``; ``lapsed`` (the rest) ->
    ``lapsed_action``. Reads ``recency``, ``frequency`` and ``monetary`` (log1p of mean basket).

    Args:
        spec: The catalog.
        observation_names: Observation column names.
        recent: Periods since the last purchase that still count as active.
        frequent: Purchase events per observed period that make a valuable customer.
        high_value: Mean basket (currency) that makes a valuable customer.
        active_action, at_risk_action, lapsed_action: Action names per segment.
        feature_config: The observation options (gives ``recency_cap``).
    """

    def __init__(self, spec: Catalog, observation_names: Sequence[str], recent: int = 2,
                 frequent: float = 0.2, high_value: float = 60.0, active_action: str = "none",
                 at_risk_action: str = "coupon_10", lapsed_action: str = "email",
                 feature_config: FeatureConfig | None = None) -> None:
        super().__init__(spec, observation_names)
        self.cap = (feature_config or FeatureConfig()).recency_cap
        if not isinstance(recent, (int, np.integer)) or not 1 <= recent <= self.cap:
            raise ValueError(f"`recent` must be an int in [1, {self.cap}]; got {recent!r}")
        if not (frequent >= 0 and high_value >= 0):
            raise ValueError(f"`frequent` and `high_value` must be >= 0; got {frequent!r}, "
                             f"{high_value!r}")
        self.recent, self.frequent, self.high_value = int(recent), float(frequent), high_value
        self.segment_actions = np.array([self.action_index(active_action),
                                         self.action_index(at_risk_action),
                                         self.action_index(lapsed_action)])
        for name in ("recency", "frequency", "monetary"):
            self._require(name)

    def segment(self, obs: np.ndarray) -> np.ndarray:
        """Segment index per row: 0 active, 1 at risk, 2 lapsed."""
        since = np.rint(self.column(obs, "recency") * self.cap)
        valuable = ((self.column(obs, "frequency") >= self.frequent)
                    | (np.expm1(self.column(obs, "monetary")) >= self.high_value))
        return np.where(since <= self.recent, 0, np.where(valuable, 1, 2))

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        return self._one_hot(self.segment_actions[self.segment(obs)])


class EmailCappedPolicy(RulePolicy):
    """A frequency-capped e-mail: ``email`` when the last contact is ``>= gap`` periods ago.

    Users unsubscribed from e-mail get ``none``. Reads ``since_contact`` and
    ``email_unsubscribed``.

    Args:
        spec: The catalog.
        observation_names: Observation column names.
        gap: Minimum periods between contacts (1 = every period).
        action: The e-mail action's name.
        feature_config: The observation options (gives ``recency_cap``).
    """

    def __init__(self, spec: Catalog, observation_names: Sequence[str], gap: int = 4,
                 action: str = "email", feature_config: FeatureConfig | None = None) -> None:
        super().__init__(spec, observation_names)
        self.cap = (feature_config or FeatureConfig()).recency_cap
        if not isinstance(gap, (int, np.integer)) or not 1 <= gap <= self.cap:
            raise ValueError(f"`gap` must be an int in [1, {self.cap}]; got {gap!r}")
        self.gap = int(gap)
        self.action = self.action_index(action)
        self.none = self.action_index("none")
        self._require("since_contact")
        self._require("email_unsubscribed")

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        since = np.rint(self.column(obs, "since_contact") * self.cap)
        send = (since >= self.gap) & (self.column(obs, "email_unsubscribed") < 0.5)
        return self._one_hot(np.where(send, self.action, self.none))


class CampaignRulePolicy(RulePolicy):
    """The synthetic shop's campaign logging policy, reading its columns by name.

    Args:
        spec: The catalog (needs ``none``, ``email``, ``push``, ``coupon_10``).
        observation_names: Observation column names.
        epsilon: Uniform exploration share (the generator logs with 0.25).
        feature_config: The observation options.
    """

    def __init__(self, spec: Catalog, observation_names: Sequence[str], epsilon: float = 0.25,
                 feature_config: FeatureConfig | None = None) -> None:
        super().__init__(spec, observation_names)
        fc = feature_config or FeatureConfig()
        self.campaign = CampaignPolicy(self.actions, epsilon=epsilon, features=fc)
        self._cols = np.array([self._require(n) for n in base_observation_names(fc)])

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        return self.campaign.action_probabilities(np.asarray(obs)[:, self._cols])


def logged_rewards(panel: pd.DataFrame, spec: Catalog) -> np.ndarray:
    """One-period reward of each logged panel row: revenue - send cost - redeemed discount.

    Rows without a logged action (``action_index < 0``) get NaN.
    """
    actions = _catalog(spec)
    cost = np.array([a.cost for a in actions])
    rate = np.array([a.discount_rate if a.kind == "discount" else 0.0 for a in actions])
    a = panel["action_index"].to_numpy().astype(np.int64)
    rev = np.nan_to_num(panel["revenue"].to_numpy(dtype=float))
    ok = (a >= 0) & (a < len(actions))
    ai = np.where(ok, a, 0)
    return np.where(ok, rev - cost[ai] - rate[ai] * rev, np.nan)


class GreedyUpliftPolicy(RulePolicy):
    """Myopic greedy uplift: the action of highest estimated one-period reward.

    ``E[revenue - cost | obs, a]`` is one ridge regression per action on the observation
    features named in ``features`` (default: every feature of
    :func:`predictors.observation_names`), fitted with inverse-propensity weights
    ``min(1 / propensity, max_weight)`` (see the module docstring for why). Fit with
    :meth:`fit` or build from a dataset folder with :meth:`from_dataset`.

    Args:
        spec: The catalog.
        observation_names: Observation column names of the env the policy will act in.
        alpha: Ridge penalty (on standardised features, in rows).
        max_weight: Clip of the inverse-propensity weights.
        min_uplift: An action other than ``none`` must beat ``none`` by this much (currency).
        features: Feature names the reward model uses (must be in ``observation_names``).
    """

    def __init__(self, spec: Catalog, observation_names: Sequence[str], alpha: float = 1.0,
                 max_weight: float = 20.0, min_uplift: float = 0.0,
                 features: Sequence[str] | None = None) -> None:
        super().__init__(spec, observation_names)
        if not (alpha >= 0 and max_weight >= 1):
            raise ValueError(f"`alpha` must be >= 0 and `max_weight` >= 1; got {alpha!r}, "
                             f"{max_weight!r}")
        self.alpha, self.max_weight, self.min_uplift = float(alpha), float(max_weight), min_uplift
        self.features = list(features) if features is not None else base_observation_names()
        self._cols = np.array([self._require(f) for f in self.features])
        self.none = self.action_index("none")
        self.coef_: np.ndarray | None = None  # (n_actions, d + 1), intercept last

    def fit(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
            pscore: np.ndarray | None = None) -> GreedyUpliftPolicy:
        """Fit the per-action reward model on logged rows.

        Args:
            obs: ``(n, d)`` observations with the columns of ``observation_names``.
            action: ``(n,)`` logged action indices.
            reward: ``(n,)`` one-period rewards.
            pscore: ``(n,)`` logging propensities of the logged actions (``None`` = 1).

        Raises:
            ValueError: On shape mismatches, or when an action was never logged.
        """
        obs = np.asarray(obs, dtype=np.float64)
        action, reward = np.asarray(action, dtype=np.int64), np.asarray(reward, dtype=float)
        n = len(obs)
        if obs.ndim != 2 or obs.shape[1] != len(self.observation_names):
            raise ValueError(f"`obs` must have shape (n, {len(self.observation_names)}); "
                             f"got {obs.shape}")
        if action.shape != (n,) or reward.shape != (n,):
            raise ValueError(f"`action` and `reward` must have shape ({n},); got "
                             f"{action.shape}, {reward.shape}")
        w = np.ones(n) if pscore is None else np.asarray(pscore, dtype=float)
        if pscore is not None:
            if w.shape != (n,) or not ((w > 0) & (w <= 1)).all():
                raise ValueError("`pscore` must have shape (n,) with values in (0, 1]")
            w = np.minimum(1.0 / w, self.max_weight)
        x = obs[:, self._cols]
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std > 1e-9, std, 1.0)
        z = np.concatenate([(x - mean) / std, np.ones((n, 1))], axis=1)
        coef = np.zeros((self.n_actions, z.shape[1]))
        penalty = self.alpha * np.eye(z.shape[1])
        penalty[-1, -1] = 0.0
        for a in range(self.n_actions):
            m = action == a
            if not m.any():
                raise ValueError(f"action {self.action_names[a]!r} was never logged; the greedy "
                                 "rule cannot estimate its reward")
            zw = z[m] * w[m, None]
            coef[a] = np.linalg.solve(z[m].T @ zw + penalty, zw.T @ reward[m])
        self.mean_, self.std_, self.coef_ = mean, std, coef
        return self

    @classmethod
    def from_dataset(cls, data: str | Path, observation_names: Sequence[str],
                     feature_config: FeatureConfig | None = None,
                     **params: Any) -> GreedyUpliftPolicy:
        """Fit on every logged period of a dataset folder (observations from the panel)."""
        ds = open_dataset(data)
        panel = build_panel(ds)
        names = base_observation_names(feature_config)
        policy = cls(ds.spec, observation_names, features=names, **params)
        obs_base = observations_from_panel(panel, ds.spec, feature_config)
        reward = logged_rewards(panel, ds.spec)
        prop = panel["propensity"].to_numpy(dtype=float)
        keep = ~np.isnan(reward) & (prop > 0) & (prop <= 1)
        # The model reads only `names`; other columns (static features) are left at 0.
        obs = np.zeros((int(keep.sum()), len(policy.observation_names)))
        obs[:, policy._cols] = obs_base[keep]
        act = panel["action_index"].to_numpy().astype(np.int64)[keep]
        return policy.fit(obs, act, reward[keep], prop[keep])

    def expected_rewards(self, obs: np.ndarray) -> np.ndarray:
        """Estimated one-period reward of every action, ``(n, n_actions)``."""
        if self.coef_ is None:
            raise ValueError("GreedyUpliftPolicy is not fitted; call fit() or from_dataset()")
        x = np.asarray(obs, dtype=np.float64)[:, self._cols]
        z = np.concatenate([(x - self.mean_) / self.std_, np.ones((len(x), 1))], axis=1)
        return z @ self.coef_.T

    def _scores(self, obs: np.ndarray) -> np.ndarray:
        q = self.expected_rewards(obs)
        q[:, np.arange(self.n_actions) != self.none] -= self.min_uplift
        return q

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        return self._one_hot(self._scores(obs).argmax(axis=1))

    def action_probabilities(self, obs: np.ndarray,
                             action_mask: np.ndarray | None = None) -> np.ndarray:
        """The best ALLOWED action per row (masking before the argmax, not after)."""
        if action_mask is None:
            return super().action_probabilities(obs)
        q = self._scores(np.asarray(obs))
        allowed = apply_action_mask(np.ones_like(q), action_mask) > 0  # validates the mask
        return self._one_hot(np.where(allowed, q, -np.inf).argmax(axis=1))


#: Rule names usable as ``rule:NAME`` (``always`` takes the action: ``rule:always:email``).
RULES = ("never", "always", "random", "winback", "rfm", "email_capped", "greedy", "campaign",
         "tuned", "logged")


def make_rule(name: str, spec: Catalog, observation_names: Sequence[str], *,
              data: str | Path | None = None, feature_config: FeatureConfig | None = None,
              **params: Any) -> BasePolicy:
    """Build the rule ``name`` (one of :data:`RULES`) with its parameters.

    Args:
        name: Rule name.
        spec: The dataset spec or catalog.
        observation_names: Observation column names of the env the rule acts in.
        data: Dataset folder, required by ``greedy`` and ``logged`` (fitted there).
        feature_config: Observation options.
        **params: The rule's parameters (``always``: ``action``; see each class).

    Raises:
        ValueError: Unknown rule, unknown parameter or a bad value.

    Example:
        >>> from predictors import default_catalog, observation_names
        >>> pi = make_rule("always", default_catalog(), observation_names(), action="push")
        >>> pi.action_probabilities(np.zeros((1, 37)))
        array([[0., 0., 1., 0., 0.]])
    """
    actions = _catalog(spec)
    names = [a.name for a in actions]
    fc = {"feature_config": feature_config} if feature_config is not None else {}
    try:
        if name == "never":
            _no_params(name, params)
            return FixedActionPolicy(names.index("none"), len(actions))
        if name == "always":
            action = params.pop("action", None)
            _no_params(name, params)
            if action not in names:
                raise ValueError(f"rule 'always' needs an action in {names}; got {action!r} "
                                 "(e.g. rule:always:email)")
            return FixedActionPolicy(names.index(action), len(actions))
        if name == "random":
            _no_params(name, params)
            return UniformRandomPolicy(len(actions))
        if name == "winback":
            return WinbackPolicy(actions, observation_names, **params, **fc)
        if name == "rfm":
            return RFMPolicy(actions, observation_names, **params, **fc)
        if name == "email_capped":
            return EmailCappedPolicy(actions, observation_names, **params, **fc)
        if name == "tuned":
            from agents.tuned_rule import TunedRulePolicy

            return TunedRulePolicy(actions, observation_names, **params, **fc)
        if name == "campaign":
            return CampaignRulePolicy(actions, observation_names, **params, **fc)
        if name == "greedy":
            if data is None:
                raise ValueError("rule 'greedy' fits its reward model on a dataset; pass `data`")
            return GreedyUpliftPolicy.from_dataset(data, observation_names, feature_config,
                                                   **params)
        if name == "logged":
            if data is None:
                raise ValueError("rule 'logged' is fitted on a dataset's logs; pass `data`")
            from agents.logged_policy import LoggedPolicy

            return LoggedPolicy.from_dataset(data, observation_names, feature_config, **params)
    except TypeError as e:  # an unknown keyword
        raise ValueError(f"rule {name!r}: {e}") from None
    raise ValueError(f"unknown rule {name!r}; expected one of {list(RULES)}")


def _no_params(name: str, params: dict[str, Any]) -> None:
    if params:
        raise ValueError(f"rule {name!r} takes no parameters; got {sorted(params)}")


def parse_rule(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``rule:NAME[:ARG][:key=value,...]`` into the name and its parameters.

    A bare ``ARG`` is the action of ``always``; values parse as int, float, bool or string.

    Example:
        >>> parse_rule("rule:winback:k=4,action=coupon_20")
        ('winback', {'k': 4, 'action': 'coupon_20'})
        >>> parse_rule("rule:always:email")
        ('always', {'action': 'email'})
    """
    if not text.startswith("rule:"):
        raise ValueError(f"a rule is written rule:NAME[:key=value,...]; got {text!r}")
    parts = text[len("rule:"):].split(":")
    name, params = parts[0], {}
    for part in parts[1:]:
        for item in filter(None, part.split(",")):
            if "=" not in item:
                params["action"] = item
                continue
            key, value = item.split("=", 1)
            params[key.strip()] = _parse_value(value.strip())
    if not name:
        raise ValueError(f"missing rule name in {text!r}; expected one of {list(RULES)}")
    return name, params


def _parse_value(value: str) -> Any:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
