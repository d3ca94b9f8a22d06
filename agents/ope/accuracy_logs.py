"""The accuracy benchmark's inputs: a generated shop's logs with the world's reward, and the truth.

**Truth** (:func:`true_value`): a policy's mean return per user over the first ``horizon``
periods, simulated in the true world (:func:`predictors.synthetic.true_policy_value`) from the
SAME users' true states and observable histories at the log's start (``read_start_states(..,
"start")``), each user tiled ``replicates`` times; its Monte-Carlo standard error is
``sqrt(mean_i var_k(G_ik) / (K n))``.

**Value**: the undiscounted sum over ``horizon`` periods of the world's reward per user,
``revenue - send cost - redeemed discount``, for estimators and truth alike. Users who churn
keep receiving decisions whose sends cost, exactly as in the world.

**Users**: those outside the universal control group (``users.holdout``). The control group is
logged with ``none`` at probability 1, so no estimator can value another policy on it.

**Reward**: the generated logs carry gross revenue only. A coupon is redeemed only when it was
delivered, i.e. its channel was subscribed at the period's start; the panel's ``net`` reward
(:func:`agents.ope.panel.logged_data_from_panel`) subtracts the discount on every purchase after
a coupon action. A real shop reads the redeemed discount off its orders; here it is rebuilt
exactly: ``round(discount_rate * revenue, 2)`` when the user purchased and the channel was
subscribed (unsubscribes seen in the log, plus the unsubscribes before the log from ``truth/``).
:func:`reward_check` compares the logged reward of each row with the truth's expected reward of
the logged action in the same state (``truth/outcomes.parquet``): their mean difference must be
zero up to noise, for the panel reward it is not.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.ope.data import LoggedData
from agents.ope.panel import logged_data_from_panel
from agents.policy import Policy
from predictors import (
    ConfigError,
    DatasetSpec,
    StartStates,
    build_panel,
    observation_names,
    open_dataset,
    read_start_states,
    true_policy_value,
)

__all__ = [
    "accuracy_logged_data",
    "load_target_policy",
    "logged_revenue",
    "reward_check",
    "true_value",
    "with_reward",
]


def load_target_policy(text: str, spec: DatasetSpec, data: str | Path) -> Policy:
    """``rule:NAME[:...]``, an export or a ``train-policy`` run folder, on the observation vector
    (a trained policy must have been trained on it: ``--env world``)."""
    from agents.loading import load_policy

    return load_policy(text, spec, observation_names(), data)


def _evaluated_users(folder: Path) -> np.ndarray:
    """Positions (= user order of ``truth/users.parquet``) of users outside the control group."""
    users = pd.read_parquet(folder / "truth" / "users.parquet", columns=["user_id", "holdout"])
    ids = users["user_id"].to_numpy()
    if not np.array_equal(ids, np.arange(len(ids))):
        raise ConfigError(f"{folder}: user ids must be 0..n-1 in order, as generated")
    return np.flatnonzero(~users["holdout"].to_numpy(dtype=bool))


def accuracy_logged_data(folder: str | Path, horizon: int, start: StartStates | None = None,
                         reward: str = "world") -> tuple[LoggedData, np.ndarray]:
    """The first ``horizon`` logged periods of the evaluated users (see the module docstring).

    Args:
        folder: A generated dataset (with ``truth/``).
        horizon: Periods kept.
        start: The dataset's start states (read when omitted).
        reward: ``world`` (redeemed discount only on delivered coupons, the world's reward) or
            ``panel`` (the panel's ``net`` reward, for comparison).

    Returns:
        The logged data and the evaluated users' ids (= positions in the start states).
    """
    if reward not in ("world", "panel"):
        raise ConfigError(f"`reward` must be 'world' or 'panel'; got {reward!r}")
    start = start or read_start_states(folder, "start")
    revenue, users = logged_revenue(Path(folder), horizon)
    return with_reward(revenue, open_dataset(folder).spec, start, reward), users


def logged_revenue(folder: Path, horizon: int) -> tuple[LoggedData, np.ndarray]:
    """Logged data whose reward is the period's gross revenue, and the evaluated users."""
    users = _evaluated_users(folder)
    ds = open_dataset(folder)
    panel = build_panel(ds, validate=False)
    keep = (panel["period"] < horizon) & panel["user_id"].isin(users)
    panel = panel[keep.to_numpy()].reset_index(drop=True)
    data = logged_data_from_panel(panel, ds.spec, reward="revenue")
    if data.n_rounds != len(users) * horizon:
        raise ConfigError(f"{folder}: expected one logged decision per user and period "
                          f"({len(users) * horizon}); got {data.n_rounds}")
    return data, users


def with_reward(data: LoggedData, spec: DatasetSpec, start: StartStates,
                 reward: str) -> LoggedData:
    """Revenue-reward ``data`` with ``revenue - send cost - redeemed discount``."""
    acts = spec.actions
    cost = np.array([a.cost for a in acts])
    rate = np.array([a.discount_rate if a.kind == "discount" else 0.0 for a in acts])
    a, revenue = data.action, data.reward
    delivered = np.ones(data.n_rounds, dtype=bool)
    if reward == "world":
        obs_names = observation_names()
        uid = np.asarray(data.user_id, dtype=np.int64)
        email_off = ((data.obs[:, obs_names.index("email_unsubscribed")] > 0.5)
                     | start.state.email_unsub[uid])
        push_off = ((data.obs[:, obs_names.index("push_unsubscribed")] > 0.5)
                    | start.state.push_unsub[uid])
        email = np.array([x.channel == "email" for x in acts])
        push = np.array([x.channel == "push" for x in acts])
        delivered = (email[a] & ~email_off) | (push[a] & ~push_off)
    redeemed = np.where(delivered & (revenue > 0), rate[a] * revenue, 0.0)
    if reward == "world":
        redeemed = np.round(redeemed, 2)
    return replace(data, reward=revenue - cost[a] - redeemed)


def reward_check(folder: str | Path, data: LoggedData) -> dict[str, Any]:
    """Mean of (logged reward - TRUE expected reward of the logged action), overall and per action.

    Returns:
        ``{"mean_diff", "se", "z", "by_action": {name: {"rows", "mean_diff", "se", "z"}}}``.
    """
    folder = Path(folder)
    horizon = int(data.time_step.max()) + 1
    out = pd.read_parquet(folder / "truth" / "outcomes.parquet",
                          columns=["user_id", "period", "action", "expected_reward"],
                          filters=[("period", "<", horizon)])
    names = list(data.action_names or [])
    code = out["action"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy()
    table = pd.Series(out["expected_reward"].to_numpy(np.float64),
                      index=pd.MultiIndex.from_arrays([out["user_id"].to_numpy(),
                                                       out["period"].to_numpy(np.int64), code]))
    key = pd.MultiIndex.from_arrays([np.asarray(data.user_id), data.time_step, data.action])
    diff = data.reward - table.reindex(key).to_numpy()

    def stats(d: np.ndarray) -> dict[str, float]:
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        mean = float(d.mean())
        return {"rows": len(d), "mean_diff": mean, "se": se, "z": mean / se if se > 0 else 0.0}

    return {**stats(diff), "by_action": {n: stats(diff[data.action == i])
                                        for i, n in enumerate(names) if (data.action == i).any()}}


def true_value(world: Any, policy: Policy, start: StartStates, users: np.ndarray, horizon: int,
               replicates: int, seed: int) -> tuple[float, float]:
    """TRUE mean return per user of ``policy`` over ``horizon`` periods, and its MC error.

    Every user of ``users`` starts ``replicates`` times (tiled); the policy draws its actions
    from ``np.random.default_rng([seed, 1])`` and the world from ``seed``.
    """
    rng = np.random.default_rng([seed, 1])
    tiled = start.subset(np.tile(users, replicates))

    def act(obs: np.ndarray) -> np.ndarray:
        return policy.act(obs, rng).astype(np.int64)

    returns = true_policy_value(world, act, tiled, horizon, seed).reshape(replicates, -1)
    if replicates > 1:
        se = float(np.sqrt(returns.var(axis=0, ddof=1).mean() / returns.size))
    else:
        se = float(returns.std(ddof=1) / np.sqrt(returns.size))
    return float(returns.mean()), se
