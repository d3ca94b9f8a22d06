"""Search the tuned-rule family (:mod:`agents.tuned_rule`) in an environment, with a budget.

:func:`tune_rule` runs a seeded search over a discrete space of :class:`TunedRuleParams`:
``cem`` (cross-entropy method: independent categorical distributions per parameter, sampled,
moved towards the elite candidates of each generation; then a coordinate search from its best
candidate with the rest of the budget) or ``grid`` (the grid's points in a
seeded random order). Every candidate is evaluated by the same evaluator: the same start users
with the same seed, so differences between candidates are paired (common random numbers). The
budget is in user-periods (start users x horizon per candidate evaluation), the unit RL's
``timesteps`` count in; a candidate already evaluated costs nothing again.

:func:`make_evaluator` builds the evaluator in the true world (``world``, a generated
dataset's ``truth/``) or in the learned shop (``sim``, a predictor run); by default from the
predictor's ``train`` users, so the held-out users an evaluation reads stay untouched.
:func:`run_tune_rule` writes a run folder: ``tune.json`` (best rule, its value and paired CI
against the default parameters ``rule:email_capped`` uses, search curve, every candidate),
``best_rule.txt`` and ``search_curve.png``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agents.evaluate import mean_ci
from agents.policy import BasePolicy
from agents.rule_support import ActionWindowSupport, log_support
from agents.tuned_rule import TunedRuleParams, TunedRulePolicy
from predictors import ConfigError, check_choice, check_int, check_number
from predictors.io import atomic_path, write_json, write_text

__all__ = ["TuneConfig", "TuneResult", "default_space", "make_evaluator", "read_tuned_rule",
           "run_tune_rule", "tune_rule"]

#: ``policy -> per-user returns (n,)`` with fixed start users and seed.
Evaluator = Callable[[BasePolicy], np.ndarray]


@dataclass(frozen=True)
class TuneConfig:
    """Options of :func:`tune_rule` and :func:`make_evaluator`.

    Attributes:
        env: ``world`` (true synthetic world) or ``sim`` (the learned shop).
        budget: User-periods the search may simulate (candidates x ``n_users`` x ``horizon``).
        n_users: Start users per candidate evaluation (the same users for every candidate).
        horizon: Periods per episode.
        method: ``cem`` or ``grid``.
        population: Candidates per CEM generation.
        elite_frac: Share of a generation that moves the CEM distribution.
        smoothing: Weight of the elite frequencies in the CEM update (1 = replace).
        cem_share: Share of the evaluations CEM may use; the rest polishes its best
            candidate by coordinate search (every one-parameter change, repeated while one
            improves it).
        start_users: Predictor split the start users come from (``all`` without a predictor).
        seed: Seed of the search and of the evaluator's common random numbers.
        support_window: ``> 0`` (``sim`` only): admit only candidates whose simulated sends
            stay where the log holds data (:mod:`agents.rule_support`): at least
            ``support_min_share`` of the candidate's windows of ``support_window``
            consecutive actions must be patterns the log holds ``>= support_min_count``
            times. 0: every candidate is admitted (the search of the plain shop value).
        support_min_count: Logged windows a pattern needs to count as supported.
        support_min_share: Share of a candidate's windows that must be supported.
    """

    env: str = "world"
    budget: int = 5_000_000
    n_users: int = 2000
    horizon: int = 26
    method: str = "cem"
    population: int = 24
    elite_frac: float = 0.25
    smoothing: float = 0.5
    cem_share: float = 0.7
    start_users: str = "train"
    seed: int = 0
    support_window: int = 0
    support_min_count: int = 30
    support_min_share: float = 0.95

    def __post_init__(self) -> None:
        check_choice(self, "env", ("world", "sim"))
        check_int(self, "support_window", "support_min_count", ge=0)
        check_number(self, "support_min_share", ge=0, le=1)
        if self.support_window > 0 and self.env != "sim":
            raise ConfigError("`support_window` needs env 'sim' (the true world needs no "
                              "support from the log)")
        check_choice(self, "method", ("cem", "grid"))
        check_int(self, "n_users", "horizon", "population", ge=1)
        if self.budget < self.n_users * self.horizon:
            raise ConfigError(f"`budget` ({self.budget:,} user-periods) must cover at least one "
                              f"evaluation of n_users x horizon = {self.n_users * self.horizon:,}")
        check_number(self, "elite_frac", "smoothing", "cem_share", gt=0, le=1)


def default_space(action_names: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """The searched values of every :class:`TunedRuleParams` field."""
    acts = tuple(action_names)
    return {
        "active": acts,
        "active_gap": (1, 2, 3, 4, 6, 8, 13),
        "lapse": (2, 3, 4, 6, 8, 13, 26),
        "lapsed": acts,
        "lapsed_gap": (1, 2, 3, 4, 6, 8, 13),
        "min_frequency": (0.0, 0.05, 0.1, 0.2, 0.4),
        "min_monetary": (0.0, 20.0, 40.0, 60.0, 100.0),
        "fallback": tuple(a for a in acts if a in ("none", "email", "push")) or ("none",),
    }


@dataclass(frozen=True)
class TuneResult:
    """Outcome of :func:`tune_rule`.

    Attributes:
        best: Parameters of the best candidate.
        rule: Its CLI name (``rule:tuned:...``).
        value: Mean return (95% CI) of the best candidate on the search's users.
        vs_default: Paired difference (95% CI) best - default parameters (``email_capped``).
        curve: Per evaluation: ``evaluations``, ``user_periods``, ``value``, ``best_value``.
        candidates: Every evaluated candidate: ``rule`` and ``value``, best first (with
            ``support``, ``admissible`` when the search is support-constrained; admissible
            candidates first).
    """

    best: TunedRuleParams
    rule: str
    value: dict[str, float]
    vs_default: dict[str, float]
    curve: list[dict[str, float]]
    candidates: list[dict[str, Any]]


def tune_rule(evaluate: Evaluator, make_policy: Callable[[TunedRuleParams], BasePolicy],
              space: dict[str, Sequence[Any]], config: TuneConfig, *,
              progress: bool = False, support: ActionWindowSupport | None = None) -> TuneResult:
    """Search ``space`` for the parameters of highest mean return under ``evaluate``.

    The default parameters are always evaluated first (the hand-set rule the search must beat).
    With ``config.support_window > 0`` a candidate whose simulated sends leave the log's
    support (:meth:`ActionWindowSupport.share` below ``support_min_share``) scores ``-inf``
    in the search and is never the best; if no candidate is admitted, the default is.

    Args:
        evaluate: Per-user returns of a policy (fixed users and seed: common random numbers),
            or a rollout with ``returns`` and ``action`` (needed for the support check).
        make_policy: Builds the policy of a parameter set.
        space: Field name -> candidate values (fields absent keep their default).
        config: Budget, method and seed.
        progress: A progress bar over candidate evaluations (stderr), with the best value.
        support: The log's action-window counts (needed when ``config.support_window > 0``,
            with that window).

    Raises:
        ConfigError: A support-constrained search without ``support`` of its window.
    """
    unknown = sorted(set(space) - {f.name for f in fields(TunedRuleParams)})
    if unknown or any(len(v) == 0 for v in space.values()):
        raise ConfigError(f"search space: unknown fields {unknown} or an empty list of values")
    constrained = config.support_window > 0
    if constrained and (support is None or support.window != config.support_window):
        raise ConfigError(f"support_window {config.support_window}: give the log's "
                          "ActionWindowSupport of that window (support=...)")
    keys = list(space)
    rng = np.random.default_rng(config.seed)
    max_evals = config.budget // (config.n_users * config.horizon)
    cache: dict[TunedRuleParams, np.ndarray] = {}
    shares: dict[TunedRuleParams, float] = {}
    curve: list[dict[str, float]] = []
    bar = tqdm(total=max_evals, desc="tune-rule", unit="candidate", disable=not progress)

    def admitted(p: TunedRuleParams) -> bool:
        return not constrained or shares[p] >= config.support_min_share

    def score(p: TunedRuleParams) -> float:
        if p not in cache:
            if len(cache) >= max_evals:
                return float("-inf")
            res = evaluate(make_policy(p))
            cache[p] = np.asarray(getattr(res, "returns", res), dtype=float)
            if constrained:
                if not hasattr(res, "action"):
                    raise ConfigError("a support-constrained search needs an evaluator that "
                                      "returns its rollout (returns and action)")
                shares[p] = support.share(np.asarray(res.action), config.support_min_count)
            best = max((float(r.mean()) for q, r in cache.items() if admitted(q)),
                       default=float("nan"))
            curve.append({"evaluations": len(cache),
                          "user_periods": len(cache) * config.n_users * config.horizon,
                          "value": float(cache[p].mean()), "best_value": best})
            bar.update(1)
            bar.set_postfix_str(f"best {best:.2f}")
        return float(cache[p].mean()) if admitted(p) else float("-inf")

    default = TunedRuleParams()
    score(default)
    if config.method == "grid":
        grid = list(itertools.product(*(space[k] for k in keys)))
        for i in rng.permutation(len(grid))[: max(max_evals - 1, 0)]:
            score(TunedRuleParams(**dict(zip(keys, grid[i], strict=True))))
    else:
        _cem(score, space, keys, config, rng, lambda: len(cache),
             int(config.cem_share * max_evals))
        _polish(score, space, keys, lambda: max(cache, key=lambda p: float(cache[p].mean())),
                lambda: len(cache) >= max_evals)
    bar.close()
    ranked = sorted(cache, key=lambda p: (not admitted(p), -float(cache[p].mean())))
    best = ranked[0] if admitted(ranked[0]) else default

    def row(p: TunedRuleParams) -> dict[str, Any]:
        extra = {"support": shares[p], "admissible": admitted(p)} if constrained else {}
        return {"rule": p.rule_string(), "value": float(cache[p].mean()), **extra}

    return TuneResult(
        best=best, rule=best.rule_string(), value=mean_ci(cache[best]),
        vs_default=mean_ci(cache[best] - cache[default]), curve=curve,
        candidates=[row(p) for p in ranked])


def _cem(score: Callable[[TunedRuleParams], float], space: dict[str, Sequence[Any]],
         keys: list[str], config: TuneConfig, rng: np.random.Generator,
         n_done: Callable[[], int], max_evals: int) -> None:
    """Cross-entropy method over independent categorical distributions, one per field."""
    probs = [np.full(len(space[k]), 1.0 / len(space[k])) for k in keys]
    n_elite = max(1, int(round(config.elite_frac * config.population)))
    stale = 0
    while n_done() < max_evals and stale < 20:
        before = n_done()
        pop = []
        for _ in range(config.population):
            idx = [int(rng.choice(len(p), p=p)) for p in probs]
            pop.append((idx, TunedRuleParams(**{k: space[k][i]
                                                for k, i in zip(keys, idx, strict=True)})))
        scored = [(score(p), idx) for idx, p in pop]
        scored = sorted((s for s in scored if np.isfinite(s[0])), key=lambda s: -s[0])
        if scored:
            elite = scored[:n_elite]
            for j, p in enumerate(probs):
                freq = np.bincount([idx[j] for _, idx in elite], minlength=len(p)) / len(elite)
                probs[j] = (1 - config.smoothing) * p + config.smoothing * freq
        stale = stale + 1 if n_done() == before else 0  # the distribution has collapsed


def _polish(score: Callable[[TunedRuleParams], float], space: dict[str, Sequence[Any]],
            keys: list[str], best: Callable[[], TunedRuleParams],
            spent: Callable[[], bool]) -> None:
    """Coordinate search from the best candidate: every one-field change, until none helps."""
    while not spent():
        start = best()
        for k in keys:
            for v in space[k]:
                score(TunedRuleParams(**{**asdict(start), k: v}))
        if best() == start:
            return


def make_evaluator(data: str | Path, predictor: str | Path | None, config: TuneConfig
                   ) -> tuple[Evaluator, list[str], Any]:
    """(evaluator, observation names, dataset spec) for ``config.env``.

    The start users are the first ``n_users`` of the predictor's ``start_users`` split (all
    of the dataset's users without a predictor, world only), at the end of the log.

    Raises:
        ConfigError: ``sim`` without a predictor; ``world`` on a dataset without ``truth/``.
    """
    from predictors import open_dataset

    if predictor is None:
        if config.env == "sim":
            raise ConfigError("--env sim needs --predictor (the learned shop is built from it)")
        from predictors import observation_names, read_start_states

        if not (Path(data) / "truth" / "world.json").is_file():
            raise ConfigError(f"{data}: --env world needs a generated dataset (truth/world.json)")
        from envs.world_vec_env import world_from_dataset

        starts = read_start_states(data, "end")
        starts = starts.subset(np.arange(min(starts.n, config.n_users)))
        return (_world_evaluator(world_from_dataset(data), starts, None, config),
                observation_names(), open_dataset(data).spec)
    from envs.rollout import rollout
    from envs.shop_env import load_learned_shop

    shop = load_learned_shop(predictor, data, start_users=config.start_users)
    index = np.arange(min(len(shop.starts), config.n_users))
    names = list(shop.observation_names)
    if config.env == "sim":
        def evaluate(policy: BasePolicy) -> Any:
            return rollout(shop, lambda o, m, r: policy.act(o, r, m), config.horizon,
                           seed=config.seed, start_index=index)

        return evaluate, names, shop.spec
    from envs.world_vec_env import world_from_dataset, world_start_states

    if not (Path(data) / "truth" / "world.json").is_file():
        raise ConfigError(f"{data}: --env world needs a generated dataset (truth/world.json)")
    starts = world_start_states(data, shop.starts.user_ids[index])
    static = shop.starts.static[index].astype(np.float32)
    return _world_evaluator(world_from_dataset(data), starts, static, config), names, shop.spec


def _world_evaluator(world: Any, starts: Any, static: np.ndarray | None,
                     config: TuneConfig) -> Evaluator:
    from predictors import true_policy_value

    def evaluate(policy: BasePolicy) -> np.ndarray:
        prng = np.random.default_rng([config.seed, 1])

        def act(obs: np.ndarray) -> np.ndarray:
            full = obs if static is None else np.concatenate([obs, static], axis=1)
            return policy.act(full.astype(np.float32), prng).astype(np.int64)

        return true_policy_value(world, act, starts, config.horizon, seed=config.seed)

    return evaluate


def run_tune_rule(data: str | Path, out: str | Path, predictor: str | Path | None = None,
                  config: TuneConfig | None = None, *, progress: bool = False) -> dict[str, Any]:
    """Tune the rule in ``config.env`` and write the run folder (module docstring).

    Returns:
        The content of ``tune.json``.
    """
    import time

    cfg = config or TuneConfig()
    evaluate, names, spec = make_evaluator(data, predictor, cfg)
    space = default_space(spec.action_names)
    t0 = time.perf_counter()
    support = log_support(data, spec, cfg.support_window) if cfg.support_window > 0 else None
    res = tune_rule(evaluate, lambda p: TunedRulePolicy(spec, names, **asdict(p)), space, cfg,
                    progress=progress, support=support)
    extra = ({"support": {"window": cfg.support_window, "min_count": cfg.support_min_count,
                          "min_share": cfg.support_min_share, "logged_windows":
                          support.n_windows, "best_share": next(
                              c["support"] for c in res.candidates if c["rule"] == res.rule)}}
             if support is not None else {})
    result = {"rule": res.rule, "params": asdict(res.best), "env": cfg.env, **extra,
              "value": res.value, "vs_default": res.vs_default,
              "default_rule": TunedRuleParams().rule_string(),
              "n_users": cfg.n_users, "horizon": cfg.horizon, "budget": cfg.budget,
              "user_periods": res.curve[-1]["user_periods"], "evaluations": len(res.curve),
              "seconds": time.perf_counter() - t0, "config": asdict(cfg),
              "space": {k: list(v) for k, v in space.items()},
              "curve": res.curve, "candidates": res.candidates}
    out = Path(out)
    write_json(out / "tune.json", result)
    write_text(out / "best_rule.txt", res.rule + "\n")
    plot_search_curve(res.curve, out / "search_curve.png", title=f"tuned rule ({cfg.env})")
    return result


def read_tuned_rule(folder: str | Path) -> str:
    """The best rule string of a ``nudgegym tune-rule`` run folder.

    Raises:
        ConfigError: ``folder`` has no ``tune.json``.
    """
    path = Path(folder) / "tune.json"
    if not path.is_file():
        raise ConfigError(f"{folder}: not a tune-rule run (no tune.json)")
    return str(json.loads(path.read_text())["rule"])


def plot_search_curve(curve: list[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Candidate values and the best so far against user-periods spent, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([c["user_periods"] for c in curve])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter(x, [c["value"] for c in curve], s=8, alpha=0.5, label="candidate")
    ax.plot(x, [c["best_value"] for c in curve], color="C1", label="best so far")
    ax.set_xlabel("user-periods simulated")
    ax.set_ylabel("mean return per user")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
