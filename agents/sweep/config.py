"""The sweep file: shop, fixed training options, grid, seeds, evaluation and search.

A sweep file is YAML (paths relative to the file)::

    shop:
      data: runs/quickstart/data           # dataset folder
      predictor: runs/quickstart/predictor # a train-predictor run; or, instead:
      # family: gru                        # train one predictor per family (also a grid key)
      # predictor_epochs: 3
    train:                                 # fixed options of every job
      algo: ppo
      timesteps: 16384
      n_envs: 256
    grid:                                  # lists of values; their product is the configs
      learning_rate: [0.001, 0.0003]
      n_epochs: [4, 10]
      env: [sim, world]
    seeds: [0, 1, 2]
    evaluation:
      users: 1000                          # held-out start users (0: all)
      horizon: 26
      replicates: 1
      rules: [rule:never, rule:email_capped]
      seed: 0
    search:
      method: grid                         # grid, random or optuna
      trials: 8                            # random / optuna: configs to try
      seed: 0

Keys of ``train`` and ``grid`` are :class:`agents.train.TrainConfig` options (``algo``,
``timesteps``, ``env`` as ``sim`` or ``world``, ``n_envs``, ``horizon``, ``coupon_gap``,
``max_contacts``, ``eval_every``, ``eval_users``), keys of the algorithm's hyperparameter YAML
(``learning_rate``, ``n_epochs``, ``policy_kwargs``, ...), and ``family`` when the shop trains
its predictors. For ``random`` and ``optuna`` a grid value may also be a range
``{low: 1e-4, high: 1e-2, log: true}`` (``int: true`` for integers).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from predictors import ConfigError

__all__ = ["SHOP_KEYS", "SweepConfig", "load_sweep", "train_keys"]

SHOP_KEYS = ("data", "predictor", "family", "predictor_epochs", "predictor_seed")
_TOP_KEYS = ("shop", "train", "grid", "seeds", "evaluation", "search")
_EVAL_KEYS = ("users", "horizon", "replicates", "rules", "seed", "start_users")
_SEARCH_KEYS = ("method", "trials", "seed")
_RANGE_KEYS = {"low", "high", "log", "int"}
#: TrainConfig options a sweep may set (seed comes from ``seeds``; device and progress are
#: fixed: every job is CPU and single-threaded).
_TRAIN_FIELDS = ("algo", "timesteps", "env", "n_envs", "horizon", "eval_every", "eval_users",
                 "coupon_gap", "max_contacts", "checkpoint_every")
_ENV_NAMES = {"sim": "learned", "learned": "learned", "world": "world"}


def train_keys() -> tuple[str, ...]:
    """TrainConfig options a sweep file may set in ``train`` or ``grid``."""
    return _TRAIN_FIELDS


def is_range(value: Any) -> bool:
    """Whether a grid value is a ``{low, high[, log, int]}`` range."""
    return isinstance(value, dict) and {"low", "high"} <= set(value) <= _RANGE_KEYS


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep file (see the module docstring).

    Attributes:
        file: Path of the sweep file (paths in it are relative to its folder).
        data: Dataset folder.
        predictor: Predictor run folder, or ``None`` when the sweep trains predictors.
        family: Default predictor family to train (``None`` with ``predictor``).
        predictor_epochs: Epochs of trained predictors.
        predictor_seed: Seed of trained predictors.
        train: Options fixed for every job.
        grid: Key -> list of values (or ranges for random/optuna search).
        seeds: Training seeds; every config runs once per seed.
        users, horizon, replicates, rules, eval_seed, start_users: The evaluation.
        method, trials, search_seed: The search.
    """

    file: Path
    data: Path
    predictor: Path | None
    family: str | None
    predictor_epochs: int
    predictor_seed: int
    train: dict[str, Any]
    grid: dict[str, Any]
    seeds: tuple[int, ...]
    users: int = 1000
    horizon: int = 26
    replicates: int = 1
    rules: tuple[str, ...] = ("rule:never",)
    eval_seed: int = 0
    start_users: str = "test"
    method: str = "grid"
    trials: int = 0
    search_seed: int = 0
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        f = self.file
        if self.method not in ("grid", "random", "optuna"):
            raise ConfigError(f"{f}: search.method must be grid, random or optuna; "
                              f"got {self.method!r}")
        if self.method != "grid" and self.trials < 1:
            raise ConfigError(f"{f}: search.trials must be >= 1 for {self.method} search; "
                              f"got {self.trials}")
        if not self.seeds:
            raise ConfigError(f"{f}: seeds must be a non-empty list of integers")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"{f}: seeds has duplicates: {list(self.seeds)}")
        for name in ("horizon", "replicates"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{f}: evaluation.{name} must be >= 1; "
                                  f"got {getattr(self, name)}")
        if self.users < 0:
            raise ConfigError(f"{f}: evaluation.users must be >= 0; got {self.users}")
        if not self.rules:
            raise ConfigError(f"{f}: evaluation.rules must name at least one rule "
                              "(the paired baseline)")
        for r in self.rules:
            if not str(r).startswith("rule:"):
                raise ConfigError(f"{f}: evaluation.rules: {r!r} is not a rule (rule:NAME)")


def _mapping(raw: Any, where: str, file: Path) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: `{where}` must be a mapping; got {type(raw).__name__}")
    return dict(raw)


def _unknown(d: dict[str, Any], allowed: tuple[str, ...], where: str, file: Path) -> None:
    bad = sorted(set(d) - set(allowed))
    if bad:
        raise ConfigError(f"{file}: unknown key `{where}.{bad[0]}`; allowed: {list(allowed)}")


def _int(value: Any, where: str, file: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{file}: `{where}` must be an integer; got {value!r}")
    return value


def _path(value: Any, where: str, file: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{file}: `{where}` must be a path; got {value!r}")
    p = Path(value)
    return p if p.is_absolute() else (file.parent / p)


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and validate a sweep file; every error names the key.

    Raises:
        ConfigError: Unreadable file, unknown or mistyped key, missing shop, an option that is
            neither a train-policy option nor a hyperparameter of the algorithm.
    """
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{file}: cannot read the sweep file: {e}") from None
    raw = _mapping(raw, "<top level>", file)
    bad = sorted(set(raw) - set(_TOP_KEYS))
    if bad:
        raise ConfigError(f"{file}: unknown key `{bad[0]}`; allowed: {list(_TOP_KEYS)}")
    shop = _mapping(raw.get("shop"), "shop", file)
    _unknown(shop, SHOP_KEYS, "shop", file)
    if "data" not in shop:
        raise ConfigError(f"{file}: `shop.data` (the dataset folder) is required")
    data = _path(shop["data"], "shop.data", file)
    if not data.is_dir():
        raise ConfigError(f"{file}: `shop.data`: no dataset folder at {data}")
    grid = _mapping(raw.get("grid"), "grid", file)
    predictor = None
    if "predictor" in shop:
        if "family" in shop or "family" in grid:
            raise ConfigError(f"{file}: give `shop.predictor` or a predictor `family` to "
                              "train, not both")
        predictor = _path(shop["predictor"], "shop.predictor", file)
        if not (predictor / "predictor.json").is_file():
            raise ConfigError(f"{file}: `shop.predictor`: no predictor run at {predictor} "
                              "(predictor.json missing)")
    elif "family" not in shop and "family" not in grid:
        raise ConfigError(f"{file}: the shop needs `shop.predictor` (a predictor run) or "
                          "`shop.family` (a predictor family to train)")
    family = shop.get("family")
    if family is not None or "family" in grid:
        from predictors.models import FAMILIES

        for fam in ([family] if family is not None else []) + list(
                grid.get("family", []) if isinstance(grid.get("family"), list) else []):
            if fam not in FAMILIES:
                raise ConfigError(f"{file}: predictor family {fam!r} unknown; "
                                  f"one of {sorted(FAMILIES)}")
    train = _mapping(raw.get("train"), "train", file)
    seeds_raw = raw.get("seeds", [0])
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        seeds_raw = [seeds_raw]
    if not isinstance(seeds_raw, list):
        raise ConfigError(f"{file}: `seeds` must be a list of integers; got {seeds_raw!r}")
    seeds = tuple(_int(s, f"seeds[{i}]", file) for i, s in enumerate(seeds_raw))
    ev = _mapping(raw.get("evaluation"), "evaluation", file)
    _unknown(ev, _EVAL_KEYS, "evaluation", file)
    rules = ev.get("rules", ["rule:never"])
    if isinstance(rules, str):
        rules = [rules]
    if not isinstance(rules, list):
        raise ConfigError(f"{file}: `evaluation.rules` must be a list; got {rules!r}")
    search = _mapping(raw.get("search"), "search", file)
    _unknown(search, _SEARCH_KEYS, "search", file)
    method = search.get("method", "grid")
    for k, v in grid.items():
        if not isinstance(v, list) and not is_range(v):
            raise ConfigError(f"{file}: `grid.{k}` must be a list of values"
                              + (" or a {low, high} range" if method != "grid" else "")
                              + f"; got {v!r}")
        if isinstance(v, list) and not v:
            raise ConfigError(f"{file}: `grid.{k}` is an empty list")
        if is_range(v) and method == "grid":
            raise ConfigError(f"{file}: `grid.{k}` is a range; grid search needs a list "
                              "(use search.method: random or optuna)")
        if k in train:
            raise ConfigError(f"{file}: `{k}` is both in `train` and in `grid`")
    cfg = SweepConfig(
        file=file, data=data, predictor=predictor, family=family,
        predictor_epochs=_int(shop.get("predictor_epochs", 5), "shop.predictor_epochs", file),
        predictor_seed=_int(shop.get("predictor_seed", 0), "shop.predictor_seed", file),
        train=train, grid=grid, seeds=seeds,
        users=_int(ev.get("users", 1000), "evaluation.users", file),
        horizon=_int(ev.get("horizon", 26), "evaluation.horizon", file),
        replicates=_int(ev.get("replicates", 1), "evaluation.replicates", file),
        rules=tuple(str(r) for r in rules), eval_seed=_int(ev.get("seed", 0),
                                                           "evaluation.seed", file),
        start_users=str(ev.get("start_users", "test")), method=str(method),
        trials=_int(search.get("trials", 0), "search.trials", file),
        search_seed=_int(search.get("seed", 0), "search.seed", file), raw=raw)
    _check_options(cfg)
    return cfg


def split_options(options: dict[str, Any], file: Path) -> tuple[dict[str, Any], dict[str, Any],
                                                                str | None]:
    """A config's options as (TrainConfig keywords, hyperparameters, predictor family)."""
    train, hyper = {}, {}
    family = options.get("family")
    for k, v in options.items():
        if k == "family":
            continue
        if k == "env":
            if v not in _ENV_NAMES:
                raise ConfigError(f"{file}: `env` must be sim or world; got {v!r}")
            train[k] = _ENV_NAMES[v]
        elif k in _TRAIN_FIELDS:
            train[k] = v
        else:
            hyper[k] = v
    return train, hyper, family


def check_hyperparams(algo: str, hyper: dict[str, Any], file: Path) -> None:
    """Raise ConfigError naming the first key that ``algo`` does not take."""
    from agents.train import load_hyperparams

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "hp.yaml"
        for key in sorted(hyper):
            p.write_text(yaml.safe_dump({key: hyper[key]}))
            try:
                load_hyperparams(algo, p)
            except ConfigError:
                raise ConfigError(f"{file}: `{key}` is neither a train-policy option "
                                  f"{list(_TRAIN_FIELDS)} nor a hyperparameter of {algo}"
                                  ) from None


def _check_options(cfg: SweepConfig) -> None:
    """Check every grid value against TrainConfig and the algorithms' hyperparameters."""
    from agents.train import TrainConfig

    sample = {k: (v[0] if isinstance(v, list) else v["low"]) for k, v in cfg.grid.items()}
    algos = cfg.grid.get("algo", [cfg.train.get("algo", "ppo")])
    if not isinstance(algos, list):
        raise ConfigError(f"{cfg.file}: `grid.algo` must be a list of algorithms")
    variants = [sample] + [{**sample, k: v} for k, vs in cfg.grid.items()
                           if isinstance(vs, list) and k != "algo" for v in vs[1:]]
    for algo in algos:
        for point in variants:
            train, hyper, _ = split_options({**cfg.train, **point, "algo": algo}, cfg.file)
            try:
                TrainConfig(**train, progress=False, device="cpu")
            except (ConfigError, TypeError) as e:
                raise ConfigError(f"{cfg.file}: {e}") from None
            check_hyperparams(algo, hyper, cfg.file)
