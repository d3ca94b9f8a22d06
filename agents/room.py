"""The room a synthetic shop leaves for a policy: TRUE values of rules, oracles and the ceiling.

For a generated dataset (which has ``truth/``), :func:`measure_room` rolls every policy out in the
TRUE world from the same start users (the logged users as the log leaves them, drawn with
replacement when more are asked for) with common random numbers, and reports each one's mean
return and its paired 95% CI against the **best tuned rule** (the better, on the fit users, of
the CEM-tuned rule and the best capped rule):

* every rule of :mod:`agents.baselines` (``greedy`` fits its reward model on the dataset);
* the **tuned rule** (:mod:`agents.tuned_rule`), searched by :func:`agents.tune_rule.tune_rule`
  (CEM + coordinate search, ``tune_budget`` user-periods) on separate *fit users* (fresh users
  of the same world after a log as long as the dataset's), and the best **capped rule**
  (action x gap, :mod:`agents.room_policies`) on the fit users;
* the **segment oracle**: each user's TRUE segment -> that segment's best rule of the family
  (capped rules + the tuned rule; per-segment means on the fit users);
* the **latent-state oracle**: each user's best capped rule predicted from the TRUE traits and
  dynamic state (the value model below, fed the latent state), and the **greedy oracle**
  (one-step lookahead: the action of highest TRUE expected one-period reward);
* the **observable ceiling**: the better, on separate *validation users*, of two RL-independent
  policies that see only what a deployed policy sees (history features plus, unless
  ``static=False``, the users table's static columns): the value model (gradient-boosted trees
  predicting each family rule's return over the tuned rule from the observation; each user gets
  its best predicted rule) and the Bayes segment policy (a classifier of the latent segment from
  the observation; each user gets the family rule of highest expected value under the
  classifier's segment probabilities). Both choose at the start and keep their rule.

Relative figures are ``mean(v - v_best) / mean(v_best)`` with a normal-approximation CI of
the paired differences (the denominator taken as fixed).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from agents.baselines import make_rule
from agents.room_policies import (
    RuleValueModel,
    StaticEncoder,
    capped_actions,
    rule_grid,
)
from agents.tune_rule import TuneConfig, default_space, tune_rule
from agents.tuned_rule import TunedRulePolicy
from predictors import ConfigError, check_choice, check_int, observation_names
from predictors.synthetic import (
    World,
    greedy_policy,
    read_start_states,
    read_world,
    sample_start_users,
    true_policy_value,
)
from predictors.synthetic.world import DYNAMIC, TRAITS

__all__ = ["RoomConfig", "measure_room", "BASE_HISTORY"]

#: The observation columns before per-channel response features existed (``history="base"``).
BASE_HISTORY = tuple(observation_names()[:31])


@dataclass(frozen=True)
class RoomConfig:
    """Options of :func:`measure_room`.

    Attributes:
        n_users: Evaluation start users.
        n_fit: Fresh users the searches and models are fitted on.
        n_val: Fresh users that choose the ceiling among its candidates.
        horizon: Periods per rollout.
        gaps: Gaps of the capped-rule family.
        static: Whether observable policies read the users table's static columns.
        history: ``full`` (every observation column) or ``base`` (without the per-channel
            response features) for the observable policies.
        rules: Baseline rules (``rule:`` names of :func:`agents.baselines.make_rule`).
        variants: Further ``(static, history)`` observations whose ceiling is measured too (an
            ablation of what the observation contains; same fits, rules and users).
        tune_users: Fit users the tuned-rule search evaluates candidates on.
        tune_budget: User-periods of the tuned-rule search.
        seed: Seed of everything.
    """

    n_users: int = 20_000
    n_fit: int = 20_000
    n_val: int = 10_000
    horizon: int = 26
    gaps: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    static: bool = True
    history: str = "full"
    rules: tuple[str, ...] = ("never", "always:email", "always:push", "always:coupon_10",
                              "always:coupon_20", "random", "winback", "rfm", "email_capped",
                              "campaign", "greedy")
    variants: tuple[tuple[bool, str], ...] = ()
    tune_users: int = 2000
    tune_budget: int = 15_000_000
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self, "n_users", "n_fit", "n_val", "horizon", "tune_users", "tune_budget",
                  ge=1)
        if not self.gaps or min(self.gaps) < 1:
            raise ConfigError(f"`gaps` must be integers >= 1; got {self.gaps}")
        check_choice(self, "history", ("full", "base"))


class _Users:
    """Start users with their observable static features and latent features."""

    def __init__(self, start, users: pd.DataFrame) -> None:
        self.start, self.users = start, users.reset_index(drop=True)

    def latent(self, n_segments: int) -> np.ndarray:
        s = self.start.state
        cols = [getattr(s, t) for t in TRAITS[1:]] + [getattr(s, d) for d in DYNAMIC]
        seg = np.eye(n_segments)[s.segment]
        return np.column_stack(cols + [seg]).astype(float)


def _eval_users(data: Path, n: int, rng: np.random.Generator) -> _Users:
    start = read_start_states(data, "end")
    users = pd.read_parquet(data / "users.parquet")
    truth_ids = pd.read_parquet(data / "truth" / "users.parquet", columns=["user_id"])["user_id"]
    users = users.set_index("user_id").loc[truth_ids].reset_index()
    idx = rng.choice(start.n, size=n, replace=n > start.n)
    return _Users(start.subset(idx), users.iloc[idx])


class _Room:
    """The rollouts of one measurement (all rollouts of a user set share one seed: CRN)."""

    def __init__(self, world: World, cfg: RoomConfig, features) -> None:
        self.world, self.cfg, self.features = world, cfg, features
        self.actions = world.config.actions
        self.names = observation_names(features)
        self.keep = self.columns(cfg.history)
        self.rules = rule_grid(self.actions, cfg.gaps)
        self.labels = [r.label(world.action_names) for r in self.rules]
        self.tuned = None  # the tuned rule, family member len(self.rules) once set

    def set_tuned(self, policy, label: str) -> None:
        self.tuned, self.labels = policy, self.labels + [label]

    def columns(self, history: str) -> np.ndarray:
        keep = self.names if history == "full" else BASE_HISTORY
        return np.array([self.names.index(c) for c in keep])

    def obs_x(self, u: _Users, enc: StaticEncoder | None,
              keep: np.ndarray | None = None) -> np.ndarray:
        x = u.start.history.observation()[:, self.keep if keep is None else keep]
        return x if enc is None else np.concatenate([x, enc.transform(u.users)], axis=1)

    def value(self, u: _Users, fn, seed: int) -> np.ndarray:
        return true_policy_value(self.world, fn, u.start, self.cfg.horizon, seed, oracle=True)

    def assigned(self, which: np.ndarray):
        """Policy: user i follows capped rule ``which[i]`` (rows = the user set's order)."""
        return lambda obs, state, t: self._family(obs, which)

    def by_segment(self, best: np.ndarray):
        return lambda obs, state, t: self._family(obs, best[state.segment])

    def _family(self, obs: np.ndarray, which: np.ndarray) -> np.ndarray:
        n_capped = len(self.rules)
        act = capped_actions(obs, self.names, self.actions, self.rules,
                             np.minimum(which, n_capped - 1), self.features)
        mine = which == n_capped
        if mine.any():
            act[mine] = self.tuned.act(obs[mine], np.random.default_rng(0))
        return act

    def grid_returns(self, u: _Users, seed: int, bar) -> np.ndarray:
        out = np.zeros((u.start.n, len(self.labels)))
        for r in range(len(self.labels)):
            out[:, r] = self.value(u, self.assigned(np.full(u.start.n, r)), seed)
            bar.update(1)
        return out


def _tune(room: _Room, start, cfg: RoomConfig, seed: int):
    """The tuned rule searched on ``start`` (common random numbers for every candidate)."""
    def evaluate(policy) -> np.ndarray:
        return true_policy_value(room.world, _rule_fn(policy, seed), start, cfg.horizon, seed,
                                 oracle=True)

    def make(p):
        return TunedRulePolicy(room.world.config.actions, room.names, room.features,
                               **asdict(p))

    tc = TuneConfig(env="world", budget=cfg.tune_budget, n_users=start.n,
                    horizon=cfg.horizon, seed=cfg.seed)
    return tune_rule(evaluate, make, default_space(room.world.action_names), tc)


def _ceiling(room: _Room, f: dict[str, Any], static: bool, history: str,
             seed: int) -> dict[str, Any]:
    """The observable candidates fitted on the fit users' observation columns, and the one of
    higher value on the validation users (``chosen``)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    fit, val = f["fit"], f["val"]
    keep = room.columns(history)
    enc = StaticEncoder().fit(fit.users) if static else None
    x_fit = room.obs_x(fit, enc, keep)
    value_model = RuleValueModel(f["best"], seed).fit(x_fit, f["grid"])
    seg = fit.start.state.segment
    present = np.unique(seg)
    clf = (HistGradientBoostingClassifier(max_iter=150, random_state=seed).fit(x_fit, seg)
           if len(present) > 1 else None)
    seg_v = f["seg_v"]

    def bayes(u: _Users) -> np.ndarray:
        p = np.zeros((u.start.n, len(seg_v)))
        if clf is None:  # one segment: nothing to classify
            p[:, present[0]] = 1.0
        else:
            p[:, clf.classes_] = clf.predict_proba(room.obs_x(u, enc, keep))
        return (p @ seg_v).argmax(axis=1)

    out: dict[str, Any] = {"value_model": lambda u: value_model.assign(room.obs_x(u, enc, keep)),
                           "bayes_segment": bayes, "encoder": enc}
    out["validation"] = {
        name: float(room.value(val, room.assigned(out[name](val)), f["s_val"]).mean())
        for name in ("value_model", "bayes_segment")}
    out["chosen"] = max(out["validation"], key=out["validation"].get)
    return out


def _rule_fn(policy, seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs, state, t: policy.act(obs, rng)


def _vs(v: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    d = v - ref
    base = ref.mean()
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    return {"mean": 100 * d.mean() / base, "low": 100 * (d.mean() - half) / base,
            "high": 100 * (d.mean() + half) / base}


def measure_room(data: str | Path, config: RoomConfig | None = None, *,
                 progress: bool = False) -> dict[str, Any]:
    """TRUE values, paired CIs and the room of a generated dataset (see the module docstring).

    Returns:
        The ``room.json`` content: ``policies`` (name, kind, value CI, ``vs_best_rule_pct``),
        ``room`` (ceiling - best tuned rule, percent), ``oracle_room``, the chosen rules and config.

    Raises:
        FileNotFoundError: ``data`` is not a generated dataset (no ``truth/``).
    """
    cfg, data = config or RoomConfig(), Path(data)
    world = read_world(data)
    features = read_start_states(data, "start").history.config
    meta = json.loads((data / "truth" / "world.json").read_text())
    periods = int(meta["generate"]["n_periods"])
    rng = np.random.default_rng(cfg.seed)
    room = _Room(world, cfg, features)
    n_rules = len(room.rules) + 1
    steps = 3 + n_rules + 3 + len(cfg.rules) + 7 + len(cfg.variants)
    bar = tqdm(total=steps, desc="room", disable=not progress, unit="step")
    ev = _eval_users(data, cfg.n_users, rng)
    fit = _Users(*sample_start_users(world, cfg.n_fit, cfg.seed + 1, periods, features))
    val = _Users(*sample_start_users(world, cfg.n_val, cfg.seed + 2, periods, features))
    bar.update(2)
    s_fit, s_val, s_ev = cfg.seed + 11, cfg.seed + 12, cfg.seed + 13

    search = _tune(room, fit.start.subset(np.arange(min(cfg.tune_users, fit.start.n))),
                   cfg, s_fit)
    room.set_tuned(TunedRulePolicy(world.config.actions, room.names, features,
                                   **asdict(search.best)), search.rule)
    bar.update(1)
    grid = room.grid_returns(fit, s_fit, bar)
    tuned = len(room.rules)  # the family's last member
    capped = int(grid[:, :tuned].mean(axis=0).argmax())
    # the best tuned rule: the better of the two searched families on the fit users
    best = tuned if grid[:, tuned].mean() >= grid[:, capped].mean() else capped
    seg = fit.start.state.segment
    n_seg = len(world.config.segments)
    seg_v = np.stack([grid[seg == s].mean(axis=0) if (seg == s).any() else grid.mean(axis=0)
                      for s in range(n_seg)])
    seg_best = seg_v.argmax(axis=1)

    latent_model = RuleValueModel(best, cfg.seed).fit(fit.latent(n_seg), grid)
    fitted = dict(fit=fit, val=val, grid=grid, seg_v=seg_v, best=best, s_val=s_val)
    main = _ceiling(room, fitted, cfg.static, cfg.history, cfg.seed)
    bar.update(3)
    enc, ceiling, cand_val = main["encoder"], main["chosen"], main["validation"]

    # every policy on the evaluation users, one seed: common random numbers
    results: list[tuple[str, str, np.ndarray]] = []
    for text in cfg.rules:
        name, _, arg = text.partition(":")
        params = {"action": arg} if arg else {}
        pol = make_rule(name, world.config.actions, room.names, data=data,
                        feature_config=features, **params)
        results.append((f"rule:{text}", "rule", room.value(ev, _rule_fn(pol, cfg.seed), s_ev)))
        bar.update(1)
    plan = [
        ("tuned rule", "tuned", room.assigned(np.full(ev.start.n, tuned))),
        (f"best {room.labels[capped]}", "capped",
         room.assigned(np.full(ev.start.n, capped))),
        ("oracle: segment", "oracle", room.by_segment(seg_best)),
        ("oracle: latent state", "oracle", room.assigned(latent_model.assign(ev.latent(n_seg)))),
        ("oracle: greedy (true one-period values)", "oracle", greedy_policy(world)),
        ("observable: value model", "observable", room.assigned(main["value_model"](ev))),
        ("observable: Bayes segment", "observable", room.assigned(main["bayes_segment"](ev))),
    ]
    for name, kind, fn in plan:
        results.append((name, kind, room.value(ev, fn, s_ev)))
        bar.update(1)
    ref = results[len(cfg.rules) + (0 if best == tuned else 1)][2]
    variants = []
    for static, history in cfg.variants:
        c = _ceiling(room, fitted, static, history, cfg.seed)
        v = room.value(ev, room.assigned(c[c["chosen"]](ev)), s_ev)
        variants.append({"static": static, "history": history, "ceiling": c["chosen"],
                         "value": float(v.mean()), "room": _vs(v, ref)})
        bar.update(1)
    bar.close()
    ceil_name = "observable: value model" if ceiling == "value_model" else \
        "observable: Bayes segment"
    by_name = {n: v for n, _, v in results}
    policies = []
    for name, kind, v in results:
        half = 1.96 * v.std(ddof=1) / np.sqrt(len(v))
        policies.append({"name": name, "kind": kind, "ceiling": name == ceil_name,
                         "value": {"mean": float(v.mean()), "low": float(v.mean() - half),
                                   "high": float(v.mean() + half)},
                         "vs_best_rule_pct": _vs(v, ref)})
    best_rule = max((r for r in results if r[1] == "rule"), key=lambda r: r[2].mean())
    return {
        "data": str(data), "n_users": cfg.n_users, "horizon": cfg.horizon,
        "config": asdict(cfg),
        "observation": [room.names[i] for i in room.keep] + (enc.names_ if enc else []),
        "tuned_rule": room.labels[tuned], "best_capped_rule": room.labels[capped],
        "best_rule": room.labels[best],
        "best_named_rule": best_rule[0],
        "tuned_search": {"vs_default": search.vs_default, "evaluations": len(search.curve)},
        "segment_rules": {world.config.segments[s].name: room.labels[b]
                          for s, b in enumerate(seg_best)},
        "ceiling": {"name": ceil_name, "validation_values": cand_val},
        "room": _vs(by_name[ceil_name], ref),
        "oracle_room": _vs(by_name["oracle: segment"], ref),
        "latent_room": _vs(by_name["oracle: latent state"], ref),
        "ceiling_variants": variants,
        "policies": policies,
    }


def plot_room(result: dict[str, Any], path: str | Path) -> Path:
    """Bar chart of every policy's value relative to the best tuned rule, with paired CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pol = result["policies"]
    colours = {"rule": "#999999", "capped": "#aec7e8", "tuned": "#1f77b4", "oracle": "#d62728",
               "observable": "#2ca02c"}
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(pol) + 1.2))
    y = np.arange(len(pol))[::-1]
    m = np.array([p["vs_best_rule_pct"]["mean"] for p in pol])
    lo = m - np.array([p["vs_best_rule_pct"]["low"] for p in pol])
    hi = np.array([p["vs_best_rule_pct"]["high"] for p in pol]) - m
    ax.barh(y, m, xerr=[lo, hi], color=[colours[p["kind"]] for p in pol], capsize=2)
    ax.set_yticks(y, [p["name"] + (" [ceiling]" if p["ceiling"] else "") for p in pol],
                  fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"TRUE value vs the best tuned rule, % ({result['n_users']} users, "
                  f"{result['horizon']} periods, paired 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
