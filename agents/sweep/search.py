"""Configs of a sweep: the full grid, a seeded random sample, or Optuna's seeded TPE.

Grid and random search list every config before any job runs, so their results do not depend
on the executor or on the order jobs finish. Optuna's TPE proposes each batch of trials from
the scores of the trials finished so far: with several trials in flight at once (one batch per
``workers``) the proposals depend on the batch size, so an adaptive search is reproducible for
a given ``--workers`` only.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from agents.sweep.config import SweepConfig, is_range
from predictors import ConfigError

__all__ = ["grid_configs", "random_configs", "suggest"]


def grid_configs(cfg: SweepConfig) -> list[dict[str, Any]]:
    """Every combination of the grid's values (keys in file order), merged into ``train``."""
    keys = list(cfg.grid)
    combos = itertools.product(*(cfg.grid[k] for k in keys)) if keys else [()]
    return [{**cfg.train, **dict(zip(keys, combo, strict=True))} for combo in combos]


def _draw(rng: np.random.Generator, value: Any) -> Any:
    if not is_range(value):
        return value[int(rng.integers(len(value)))]
    low, high = value["low"], value["high"]
    if value.get("int"):
        if value.get("log"):
            return int(round(float(np.exp(rng.uniform(np.log(low), np.log(high))))))
        return int(rng.integers(low, high + 1))
    if value.get("log"):
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high))


def random_configs(cfg: SweepConfig, trials: int, seed: int) -> list[dict[str, Any]]:
    """``trials`` distinct configs drawn with ``seed`` (fewer when the grid is smaller)."""
    rng = np.random.default_rng(seed)
    seen: list[dict[str, Any]] = []
    finite = all(isinstance(v, list) for v in cfg.grid.values())
    size = int(np.prod([len(v) for v in cfg.grid.values()])) if finite else None
    attempts = 0
    while len(seen) < trials and (size is None or len(seen) < size) and attempts < 100 * trials:
        attempts += 1
        c = {**cfg.train, **{k: _draw(rng, v) for k, v in cfg.grid.items()}}
        if c not in seen:
            seen.append(c)
    return seen


def suggest(trial: Any, cfg: SweepConfig) -> dict[str, Any]:
    """A config from an Optuna trial (categorical lists, float / int ranges)."""
    out = dict(cfg.train)
    for k, v in cfg.grid.items():
        if is_range(v):
            if v.get("int"):
                out[k] = trial.suggest_int(k, int(v["low"]), int(v["high"]),
                                           log=bool(v.get("log")))
            else:
                out[k] = trial.suggest_float(k, float(v["low"]), float(v["high"]),
                                             log=bool(v.get("log")))
        else:
            idx = trial.suggest_categorical(k, list(range(len(v))))
            out[k] = v[idx]
    return out


def optuna_study(seed: int) -> Any:
    """A maximising Optuna study with a seeded TPE sampler (lazy import, clear error)."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("--search optuna needs Optuna: pip install 'nudgegym[optuna]'"
                          ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize",
                               sampler=optuna.samplers.TPESampler(seed=seed))
