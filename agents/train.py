"""Train an SB3 policy (PPO, MaskablePPO, DQN) on the batched learned shop, or the true world.

One readable entry point, :func:`train_policy`: config, then the env, then the model, then
``learn`` with callbacks (periodic evaluation in the simulator on held-out start users with
:func:`envs.rollout.rollout`, atomic checkpoints, a progress bar). Hyperparameters are YAML per
algorithm (``agents/hyperparams/{ppo,dqn,maskable_ppo}.yaml``, rl-zoo style: SB3 constructor
keywords plus ``n_envs``, ``reward_scale`` and ``keep``: ``last`` keeps the policy at the end of
training as ``model.zip``, ``best`` the one of the highest periodic evaluation on the held-out
users, the start included; after a resume, among the evaluations since it); a ``--config`` file
overrides keys.

Run folder: ``config.json`` (by the CLI), ``hyperparams.yaml``, ``policy.json``, ``model.zip``,
``checkpoint.json`` + ``checkpoint.zip`` (evaluations so far, and the model, which carries its
own step count; the json is written first and a resume keeps only the evaluations up to the
model's step, so a kill between the two writes loses nothing the model has), ``metrics.json``,
``learning_curve.png``, ``progress.csv`` (SB3's training log; a resume appends to it) and, when
TensorBoard is installed, its event files.
"""

from __future__ import annotations

import copy
import importlib.resources
import inspect
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecMonitor
from tqdm import tqdm

from agents.batched_sb3 import ALGORITHMS, TrainingRewardWrapper
from agents.sb3_policy import SB3Policy, write_policy_file
from predictors import ConfigError, resolve_device
from predictors.io import atomic_path, write_json, write_text

__all__ = ["TrainConfig", "load_hyperparams", "train_policy"]

#: Keys of the YAML files that are not SB3 constructor arguments.
_ENV_KEYS = ("n_envs", "reward_scale", "keep", "warm_start")
#: Values of the ``keep`` key: which evaluated policy the run keeps as ``model.zip``.
KEEP = ("last", "best")
#: Keys of ``warm_start:`` that choose the warm start itself (the others override SB3's).
_WARM_KEYS = ("method", "rollout", "rollout_clone", "rollout_fine_tune", "shop")


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train_policy`.

    Attributes:
        algo: ``ppo``, ``maskable-ppo`` or ``dqn``.
        timesteps: Env steps (user-periods) to train for.
        env: ``learned`` (the simulator built from the predictor) or ``world`` (the dataset's
            true synthetic world, for the upper bound; needs ``truth/``).
        n_envs: Simultaneous users; ``None`` takes the YAML's.
        horizon: Episode length in periods.
        seed: Seed of the model, the env and the evaluations.
        device: ``auto``, ``cpu`` or ``cuda[:n]`` of the policy (the env's predictor runs on CPU).
        eval_every: Env steps between evaluations (0: ten over the run).
        eval_users: Held-out start users evaluated (the first ones by id; 0 = all).
        checkpoint_every: Env steps between checkpoints (0: at each evaluation).
        coupon_gap, max_contacts: Frequency caps (action masks; others get ``noop``).
        start_users: Predictor split the training episodes start from.
        eval_start_users: Predictor split of the periodic evaluations.
        progress: Progress bar on stderr.
        reward: Training signal: ``sampled`` (the drawn one-period reward) or ``expected``
            (its expectation given the state and the action taken: the world's exact one, or
            the predictor's; removes the draw's noise, not the dynamics'). Evaluations always
            use sampled returns.
        reference: A policy (``rule:...`` or a ``tune-rule`` run) evaluated once on the same
            held-out users with the same seed; every evaluation records the paired difference
            against it, and the metrics the wall time until the policy first passes it.
        warm_start: A policy (``rule:...`` or a ``tune-rule`` run) cloned into the actor, with
            the critic fitted to its value, before training (PPO and MaskablePPO); for DQN its
            action values are fitted (fitted Q evaluation with a large-margin term) and its
            transitions seed the replay buffer (:mod:`agents.warm_start`).
        penalty: MOPO-style reward penalty per unit of an ensemble predictor's disagreement
            (learned env only; 0: none).
        static_features: The observation ends with the users table's static columns as the
            predictor encodes them (``static:COL``, ``static:COL=VALUE``; e.g. push opt-in,
            loyalty tier, acquisition channel), in both envs; ``policy.json`` lists them, so
            evaluation, export and serving give the policy the same inputs.
    """

    algo: str = "ppo"
    timesteps: int = 200_000
    env: str = "learned"
    n_envs: int | None = None
    horizon: int = 26
    seed: int = 0
    device: str = "auto"
    eval_every: int = 0
    eval_users: int = 2000
    checkpoint_every: int = 0
    coupon_gap: int = 0
    max_contacts: int = 0
    start_users: str = "train"
    eval_start_users: str = "val"
    progress: bool = True
    reward: str = "sampled"
    reference: str | None = None
    warm_start: str | None = None

    penalty: float = 0.0
    static_features: bool = False

    def __post_init__(self) -> None:
        if not (self.penalty >= 0):
            raise ConfigError(f"`penalty` must be >= 0; got {self.penalty!r}")
        if self.reward not in ("sampled", "expected"):
            raise ConfigError(f"`reward` must be 'sampled' or 'expected'; got {self.reward!r}")
        if self.algo not in ALGORITHMS:
            raise ConfigError(f"`algo` must be one of {sorted(ALGORITHMS)}; got {self.algo!r}")
        if self.env not in ("learned", "world"):
            raise ConfigError(f"`env` must be 'learned' or 'world'; got {self.env!r}")
        for name in ("timesteps", "horizon"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be >= 1; got {getattr(self, name)!r}")
        for name in ("eval_every", "eval_users", "checkpoint_every", "coupon_gap",
                     "max_contacts"):
            if getattr(self, name) < 0:
                raise ConfigError(f"`{name}` must be >= 0; got {getattr(self, name)!r}")
        if self.n_envs is not None and self.n_envs < 1:
            raise ConfigError(f"`n_envs` must be >= 1; got {self.n_envs!r}")


def load_hyperparams(algo: str, path: str | Path | None = None) -> dict[str, Any]:
    """The default YAML of ``algo`` updated with the keys of ``path``; checked against SB3.

    Raises:
        ConfigError: Unknown algorithm, unreadable file or a key the algorithm does not take.
    """
    if algo not in ALGORITHMS:
        raise ConfigError(f"`algo` must be one of {sorted(ALGORITHMS)}; got {algo!r}")
    name = algo.replace("-", "_") + ".yaml"
    text = importlib.resources.files("agents.hyperparams").joinpath(name).read_text()
    params = yaml.safe_load(text) or {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"--config {path}: no such file; expected a YAML file of "
                              "hyperparameters")
        try:
            extra = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as e:
            raise ConfigError(f"--config {path}: cannot read it ({e.strerror})") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            what = getattr(e, "problem", None) or "not valid YAML"
            raise ConfigError(f"--config {path}: {where}{what}; expected a YAML mapping of "
                              "hyperparameters") from None
        if not isinstance(extra, dict):
            raise ConfigError(f"--config {path}: expected a mapping of hyperparameters; got "
                              f"a {type(extra).__name__}")
        warm_extra = extra.pop("warm_start", None)
        params.update(extra)
        if warm_extra is not None:  # the warm-start section merges key by key
            params["warm_start"] = _merge_section(params.get("warm_start"), warm_extra)
    signature = inspect.signature(ALGORITHMS[algo].__init__).parameters
    allowed = set(signature) | set(_ENV_KEYS)
    allowed -= {"self", "policy", "env", "seed", "device", "tensorboard_log", "verbose"}
    unknown = sorted(set(params) - allowed)
    source = f"--config {path}" if path is not None else name
    warm = params.get("warm_start") or {}
    if not isinstance(warm, dict):
        raise ConfigError(f"`warm_start` ({source}) must be a mapping of "
                          f"hyperparameters; got {type(warm).__name__}")
    unknown += [f"warm_start.{k}" for k in sorted(set(warm) - (allowed - {"warm_start"})
                                                   - set(_WARM_KEYS))]
    fine = warm.get("rollout_fine_tune") or {}
    if not isinstance(fine, dict):
        raise ConfigError(f"`warm_start.rollout_fine_tune` ({source}) must be a mapping of "
                          f"hyperparameters; got {type(fine).__name__}")
    unknown += [f"warm_start.rollout_fine_tune.{k}"
                for k in sorted(set(fine) - (allowed - {"warm_start"}))]
    method = warm.get("method", "auto")
    plain = "fqe" if algo == "dqn" else "clone"
    if method not in ("auto", "rollout", plain):
        raise ConfigError(f"`warm_start.method` ({source}) must be 'auto', 'rollout' or "
                          f"{plain!r} for {algo}; got {method!r}")
    from agents.warm_start_rollout import clone_config, rollout_config

    if "rollout" in warm:
        rollout_config(warm["rollout"], seed=0)  # named errors now, not after env set-up
    if "rollout_clone" in warm:
        if algo == "dqn":
            raise ConfigError(f"`warm_start.rollout_clone` ({source}) is for PPO (how it clones "
                              "the improved policy); DQN's Q-network is the rollout fit itself")
        clone_config(warm["rollout_clone"], seed=0)
    if "shop" in warm:  # the learned shop's safe branches (agents.shop_branches)
        from agents.shop_branches import shop_branch_config

        try:
            shop_branch_config(warm["shop"])
        except ConfigError as e:
            raise ConfigError(f"{e} ({source})") from None
    if unknown:
        raise ConfigError(f"{source}: hyperparameters {unknown} are not arguments of {algo}; "
                          f"allowed: {sorted(a for a in allowed if not a.startswith('_'))}")
    for where, value in (("keep", params.get("keep", "last")),
                         ("warm_start.keep", warm.get("keep", "last"))):
        if value not in KEEP:
            raise ConfigError(f"`{where}` ({source}) must be one of {list(KEEP)}; got {value!r}")
    defaults = {k: v.default for k, v in signature.items()}
    defaults.update({"n_envs": 1024, "reward_scale": 1.0})
    for key, value in [*params.items(), *fine.items()]:
        _check_number(key, value, defaults.get(key), source)
    return params


def _merge_section(base: Any, extra: Any) -> Any:
    """``extra`` over ``base`` where both are mappings, recursively (``warm_start: {rollout:
    {n_states: 4096}}`` changes one option and keeps the others); else ``extra``."""
    if not (isinstance(base, dict) and isinstance(extra, dict)):
        return extra
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge_section(base.get(key), value)
    return merged


def _check_number(key: str, value: Any, default: Any, source: Any) -> None:
    """A hyperparameter whose default is a number must be a number (an int where it is one)."""
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int) and not (is_number and float(value).is_integer()):
        raise ConfigError(f"{source}: `{key}` must be a whole number (default {default}); "
                          f"got {value!r}")
    if not is_number:
        raise ConfigError(f"{source}: `{key}` must be a number (default {default!r}); "
                          f"got {value!r}")


#: ``policy_kwargs.activation_fn`` names accepted in the YAML files.
ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU"}


def _sb3_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """SB3 constructor keywords: drop the env keys, turn activation names into torch classes."""
    import torch.nn as nn

    kwargs = {k: v for k, v in params.items() if k not in _ENV_KEYS}
    pk = dict(kwargs.get("policy_kwargs") or {})
    act = pk.get("activation_fn")
    if isinstance(act, str):
        if act not in ACTIVATIONS:
            raise ConfigError(f"policy_kwargs.activation_fn must be one of {sorted(ACTIVATIONS)}; "
                              f"got {act!r}")
        pk["activation_fn"] = getattr(nn, ACTIVATIONS[act])
        kwargs["policy_kwargs"] = pk
    return kwargs


def _make_envs(cfg: TrainConfig, predictor: str | Path, data: str | Path, n_envs: int):
    """(training VecEnv, evaluation function, observation names, action names, spec).

    The evaluation function maps a policy to the per-user returns of the held-out start users
    (``eval_start_users``, the first ``eval_users``) in the env the policy is trained in: the
    learned shop (:func:`envs.rollout.rollout`) or the true world
    (:func:`predictors.true_policy_value`), with a fixed seed (common random numbers).
    """
    from envs.rollout import rollout
    from envs.shop_env import CapConfig, ShopVecEnv, load_learned_shop

    caps = CapConfig(coupon_gap=cfg.coupon_gap, max_contacts=cfg.max_contacts)
    train_shop = load_learned_shop(predictor, data, start_users=cfg.start_users, caps=caps,
                                   penalty=cfg.penalty, static_in_obs=cfg.static_features)
    eval_shop = load_learned_shop(train_shop.simulator.predictor, data,
                                  start_users=cfg.eval_start_users, caps=caps,
                                  static_in_obs=cfg.static_features)
    names = list(train_shop.observation_names)
    n_eval = len(eval_shop.starts)
    index = np.arange(n_eval if cfg.eval_users == 0 else min(n_eval, cfg.eval_users))
    invalid = "raise" if cfg.algo == "maskable-ppo" else "noop"
    if cfg.env == "learned":
        venv = ShopVecEnv(train_shop, n_envs=n_envs, horizon=cfg.horizon, seed=cfg.seed,
                          invalid_action=invalid, reward=cfg.reward)

        def evaluate(policy: SB3Policy) -> np.ndarray:
            return rollout(eval_shop, lambda o, m, r: policy.act(o, r, m), cfg.horizon,
                           seed=cfg.seed + 1, start_index=index).returns
    else:
        from envs.world_vec_env import WorldVecEnv, world_from_dataset, world_start_states
        from predictors import true_policy_value

        world = world_from_dataset(data)
        starts = world_start_states(data, train_shop.starts.user_ids)
        venv = WorldVecEnv(world, starts, n_envs=n_envs, horizon=cfg.horizon,
                           static=train_shop.starts.static, seed=cfg.seed, reward=cfg.reward)
        eval_starts = world_start_states(data, eval_shop.starts.user_ids[index])
        static = eval_shop.starts.static[index].astype(np.float32)

        def evaluate(policy: SB3Policy) -> np.ndarray:
            rng = np.random.default_rng(cfg.seed + 2)

            def act(obs: np.ndarray) -> np.ndarray:
                return policy.act(np.concatenate([obs, static], axis=1), rng)

            return true_policy_value(world, act, eval_starts, cfg.horizon, seed=cfg.seed + 1)
    return venv, evaluate, names, list(eval_shop.spec.action_names), eval_shop.spec


class _Progress(BaseCallback):
    """Periodic evaluation on held-out users, atomic checkpoints and a tqdm bar."""

    def __init__(self, run: Path, cfg: TrainConfig, evaluate: Any, eval_every: int,
                 checkpoint_every: int, history: list[dict[str, float]],
                 reference: np.ndarray | None = None, started: float | None = None,
                 keep_best: bool = False) -> None:
        super().__init__()
        self.reference, self.started = reference, started
        self.run, self.cfg, self.evaluate_fn = run, cfg, evaluate
        self.eval_every, self.checkpoint_every = eval_every, checkpoint_every
        self.history = history
        self.n_eval_users = 0
        self.bar: tqdm | None = None
        self.keep_best = keep_best  # copy the weights of the best evaluation (keep: best)
        self.best: tuple[dict[str, float], dict[str, Any]] | None = None  # (row, state_dict)
        self.evaluated_updates: int | None = None  # the model's update count at the last one

    def _on_training_start(self) -> None:
        self.next_eval = (self.num_timesteps // self.eval_every + 1) * self.eval_every
        self.next_ckpt = (self.num_timesteps // self.checkpoint_every + 1) * self.checkpoint_every
        self.t0, self.steps0 = time.perf_counter(), self.num_timesteps
        if self.cfg.progress:
            self.bar = tqdm(total=self.cfg.timesteps, initial=self.num_timesteps,
                            unit="step", unit_scale=True, desc=f"train {self.cfg.algo}")
        if not self.history:
            self.evaluate()

    def evaluate(self) -> None:
        ret = self.evaluate_fn(SB3Policy(self.model, deterministic=True))
        self.n_eval_users = len(ret)
        half = 1.96 * ret.std(ddof=1) / np.sqrt(len(ret)) if len(ret) > 1 else float("nan")
        elapsed = time.perf_counter() - self.t0
        fps = (self.num_timesteps - self.steps0) / elapsed if elapsed > 0 else float("nan")
        row = {"timesteps": int(self.num_timesteps), "mean_return": float(ret.mean()),
               "ci_half_width": float(half), "fps": float(fps),
               "seconds": float(time.perf_counter() - (self.started or self.t0))}
        if self.reference is not None:
            d = ret - self.reference
            dh = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            row.update(vs_reference=float(d.mean()), vs_reference_low=float(d.mean() - dh),
                       vs_reference_high=float(d.mean() + dh))
        self.history.append(row)
        self.evaluated_updates = getattr(self.model, "_n_updates", None)
        self.logger.record("eval/mean_return", float(ret.mean()))
        if self.keep_best and (self.best is None
                               or row["mean_return"] > self.best[0]["mean_return"]):
            self.best = (row, copy.deepcopy(self.model.policy.state_dict()))

    def checkpoint(self) -> None:
        # json first: the zip carries its own step count, and a resume keeps only the
        # evaluations up to it, so a kill between the two writes leaves a consistent pair.
        write_json(self.run / "checkpoint.json", {"timesteps": int(self.num_timesteps),
                                                  "history": self.history})
        with atomic_path(self.run / "checkpoint.zip") as tmp:
            self.model.save(tmp)

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.num_timesteps - self.bar.n)
        if self.num_timesteps >= self.next_eval:
            self.evaluate()
            self.next_eval += self.eval_every
        if self.num_timesteps >= self.next_ckpt:
            self.checkpoint()
            self.next_ckpt += self.checkpoint_every
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train_policy(predictor: str | Path, data: str | Path, out: str | Path,
                 config: TrainConfig | None = None, hyperparams: str | Path | None = None,
                 resume: bool = False) -> dict[str, Any]:
    """Train a policy and write its run folder (see the module docstring).

    Args:
        predictor: Predictor run folder (``nudgegym train-predictor --out``).
        data: The dataset folder the predictor was trained on.
        out: Run folder to write.
        config: Training options.
        hyperparams: Optional YAML overriding the algorithm's defaults.
        resume: Continue from ``out/checkpoint.zip`` (its step count and evaluations).

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        ConfigError: Bad options; ``resume`` without a checkpoint.
    """
    cfg = config or TrainConfig()
    run = Path(out)
    if resume and not (run / "checkpoint.zip").is_file():
        raise ConfigError(f"{run / 'checkpoint.zip'}: nothing to resume from")
    run.mkdir(parents=True, exist_ok=True)
    params = load_hyperparams(cfg.algo, hyperparams)
    if resume and (run / "hyperparams.yaml").is_file():
        params = yaml.safe_load((run / "hyperparams.yaml").read_text())
    overrides = dict(params.pop("warm_start", None) or {})
    warm_method = overrides.pop("method", "auto")
    warm_rollout = overrides.pop("rollout", None)
    warm_clone = overrides.pop("rollout_clone", None)
    warm_fine = overrides.pop("rollout_fine_tune", None)
    warm_shop = overrides.pop("shop", None)
    # auto: branch the users in the true world only. The learned shop can be branched too
    # (agents.shop_branches), but measured in TRUE value it loses to the rule there (the exact
    # rollout improvement exploits the predictor's errors), so auto keeps fqe / clone in it.
    if warm_method == "auto":
        warm_method = ("rollout" if cfg.env == "world"
                       else "fqe" if cfg.algo == "dqn" else "clone")
    if warm_shop is not None and warm_method != "rollout":  # (its fields: load_hyperparams)
        raise ConfigError(f"`warm_start.shop` needs `warm_start.method: rollout`; got "
                          f"{warm_method!r}")
    if cfg.warm_start is not None:  # fine-tuning a cloned rule, not learning from scratch
        params.update(overrides)
        if warm_method == "rollout":  # ... or the rollout-improved one
            params.update(warm_fine or {})
    keep = str(params.get("keep", "last"))
    n_envs = cfg.n_envs or int(params.get("n_envs", 1024))
    params["n_envs"] = n_envs
    if cfg.warm_start is not None:  # the warm start used, for the record (and a resume)
        params["warm_start"] = {"method": warm_method,
                                **({"rollout": warm_rollout} if warm_rollout else {}),
                                **({"rollout_clone": warm_clone} if warm_clone else {}),
                                **({"rollout_fine_tune": warm_fine} if warm_fine else {}),
                                **({"shop": warm_shop} if warm_shop else {})}
    write_text(run / "hyperparams.yaml", yaml.safe_dump(params, sort_keys=False))
    sb3_kwargs = _sb3_kwargs(params)
    device = resolve_device(cfg.device)

    venv, evaluate, names, action_names, spec = _make_envs(cfg, predictor, data, n_envs)
    from agents.loading import load_policy

    reference = None
    if cfg.reference is not None:
        reference = np.asarray(evaluate(load_policy(cfg.reference, spec, names, data)))
    env = TrainingRewardWrapper(VecMonitor(venv),
                                reward_scale=float(params.get("reward_scale", 1.0)),
                                gamma=float(sb3_kwargs.get("gamma", 0.99)))
    algo_cls = ALGORITHMS[cfg.algo]
    history: list[dict[str, float]] = []
    if resume:
        model = algo_cls.load(run / "checkpoint.zip", env=env, device=device)
        saved = run / "checkpoint.json"
        history = json.loads(saved.read_text())["history"] if saved.is_file() else []
        history = [h for h in history if h["timesteps"] <= model.num_timesteps]
        _say(f"resuming from step {model.num_timesteps:,} of {cfg.timesteps:,} "
             f"({run / 'checkpoint.zip'})")
    else:
        try:
            model = algo_cls("MlpPolicy", env, seed=cfg.seed, device=device, verbose=0,
                             **sb3_kwargs)
        except (AssertionError, TypeError, ValueError) as e:
            raise ConfigError(f"{hyperparams or cfg.algo + ' defaults'}: {cfg.algo} rejects "
                              f"these hyperparameters ({' '.join(str(e).split())})") from None
    _say_rounding(model, cfg.timesteps)
    warm: dict[str, Any] | None = None
    t_start = time.perf_counter()  # time-to-value counts the warm start
    if cfg.warm_start is not None and not resume:
        from agents.warm_start import (
            QWarmStartConfig,
            WarmStartConfig,
            warm_start_actor_critic,
            warm_start_q,
        )

        t_warm = time.perf_counter()
        teacher = load_policy(cfg.warm_start, spec, names, data)
        scale = float(params.get("reward_scale", 1.0))
        if warm_method == "rollout":
            from agents.shop_branches import shop_branch_config
            from agents.warm_start_rollout import (
                clone_config,
                improved_teacher,
                rollout_config,
                warm_start_q_rollout,
            )

            rcfg = rollout_config(warm_rollout, seed=cfg.seed)
            safe = shop_branch_config(warm_shop) if warm_shop is not None else None
            if cfg.algo == "dqn":
                warm = warm_start_q_rollout(model, venv, teacher, rcfg, reward_scale=scale,
                                            shop=safe, data=data)
            else:
                arch = tuple((params.get("policy_kwargs") or {}).get("net_arch") or (64, 64))
                arch = arch if all(isinstance(h, int) for h in arch) else (64, 64)
                teacher, info = improved_teacher(venv, teacher, rcfg, arch, reward_scale=scale,
                                                 shop=safe, data=data)
                warm = warm_start_actor_critic(model, venv, teacher,
                                               clone_config(warm_clone, seed=cfg.seed),
                                               reward_scale=scale)
                warm.update(method="rollout", rollout=info)
        elif cfg.algo == "dqn":
            warm = warm_start_q(model, venv, teacher, QWarmStartConfig(seed=cfg.seed),
                                reward_scale=scale)
        else:
            warm = warm_start_actor_critic(model, venv, teacher, WarmStartConfig(seed=cfg.seed),
                                           reward_scale=scale)
        warm["seconds"] = time.perf_counter() - t_warm
    if hasattr(model.policy, "predict_values"):
        env.attach(model.policy, model.gamma)  # one batched bootstrap forward per step
    formats = ["csv"]
    try:
        import tensorboard  # noqa: F401

        formats.append("tensorboard")
    except ImportError:
        warnings.warn("tensorboard is not installed; logging to progress.csv only", stacklevel=2)
    parts = _keep_progress(run) if resume else []
    model.set_logger(configure(str(run), formats))
    write_policy_file(run, cfg.algo, names, action_names)

    every = cfg.eval_every or max(cfg.timesteps // 10, n_envs)
    cb = _Progress(run, cfg, evaluate, every, cfg.checkpoint_every or every, history, reference,
                   None if resume else t_start, keep_best=keep == "best")
    remaining = cfg.timesteps - model.num_timesteps
    t0, c0, steps0 = time.perf_counter(), time.process_time(), model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=cb, reset_num_timesteps=not resume)
    model.logger.close()
    if parts:
        _merge_progress(run, parts, resumed_at=steps0)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    # an evaluation during the last rollout saw the policy before that rollout's update
    if (not history or history[-1]["timesteps"] != model.num_timesteps
            or cb.evaluated_updates != getattr(model, "_n_updates", None)):
        cb.evaluate()
    cb.checkpoint()  # the last policy: a resume continues from it
    kept = history[-1]
    if keep == "best" and cb.best is not None and cb.best[0] is not kept:
        kept = cb.best[0]
        model.policy.load_state_dict(cb.best[1])  # the best-evaluated policy is the run's
    with atomic_path(run / "model.zip") as tmp:
        model.save(tmp)
    metrics = {
        "algo": cfg.algo, "env": cfg.env, "timesteps": int(model.num_timesteps),
        "n_envs": n_envs, "device": str(device), "train_seconds": seconds,
        "fps": (model.num_timesteps - steps0) / seconds if seconds > 0 else None,
        "cpu_seconds": cpu_seconds,  # process CPU time: with shared cores, fps understates
        "final_eval": kept, "kept": keep, "eval_history": history, "config": asdict(cfg),
        "eval_users": int(cb.n_eval_users), "eval_start_users": cfg.eval_start_users,
        "eval_env": cfg.env,
    }
    if warm is not None:
        metrics["warm_start"] = {"policy": cfg.warm_start, **warm}
    if reference is not None:
        passed = [h for h in history if h["vs_reference"] > 0]
        sure = [h for h in history if h["vs_reference_low"] > 0]
        metrics["reference"] = {"policy": cfg.reference, "mean_return": float(reference.mean()),
                                "seconds_to_pass": passed[0]["seconds"] if passed else None,
                                "timesteps_to_pass": passed[0]["timesteps"] if passed else None,
                                "seconds_to_ci_above": sure[0]["seconds"] if sure else None}
    write_json(run / "metrics.json", metrics)
    plot_learning_curve(history, run / "learning_curve.png", title=f"{cfg.algo} ({cfg.env})")
    return metrics


def _say(text: str) -> None:
    """A one-line notice on stderr (the CLI's channel for progress and notes)."""
    import sys

    print(text, file=sys.stderr, flush=True)


def _say_rounding(model: Any, timesteps: int) -> None:
    """State how ``timesteps`` rounds up to whole collection steps of the algorithm."""
    unit = int(getattr(model, "n_steps", 1)) * int(model.n_envs)
    total = -(-timesteps // unit) * unit
    if total != timesteps:
        what = (f"whole rollouts of n_steps {model.n_steps} x n_envs {model.n_envs}"
                if hasattr(model, "n_steps") else f"whole steps of n_envs {model.n_envs} users")
        _say(f"note: --timesteps {timesteps:,} trains {total:,} steps ({what})")


def _keep_progress(run: Path) -> list[Path]:
    """Before a resume: move ``progress.csv`` aside as the next ``progress.partN.csv``.

    SB3 rewrites ``progress.csv`` when its logger starts; the earlier parts are merged back by
    :func:`_merge_progress` when training ends (a kill in between loses no part).
    """
    parts = sorted(run.glob("progress.part*.csv"), key=lambda p: int(p.stem[13:] or 0))
    current = run / "progress.csv"
    if current.is_file() and current.stat().st_size > 0:
        new = run / f"progress.part{len(parts)}.csv"
        current.replace(new)
        parts.append(new)
    return parts


def _merge_progress(run: Path, parts: list[Path], resumed_at: int) -> None:
    """``progress.csv`` = the earlier parts followed by this run's rows (union of columns).

    Rows the earlier parts logged after the checkpoint this run resumed from (a kill came after
    them, before the next checkpoint) are dropped: this run logs those steps again.
    """
    import pandas as pd

    frames = []
    for p in parts:
        if p.is_file() and p.stat().st_size > 0:
            df = pd.read_csv(p)
            if "time/total_timesteps" in df.columns:
                df = df[df["time/total_timesteps"] <= resumed_at]
            frames.append(df)
    current = run / "progress.csv"
    if current.is_file() and current.stat().st_size > 0:
        frames.append(pd.read_csv(current))
    merged = pd.concat(frames, ignore_index=True, sort=False)
    with atomic_path(run / "progress.csv") as tmp:
        merged.to_csv(tmp, index=False)
    for p in parts:
        p.unlink()


def plot_learning_curve(history: list[dict[str, float]], path: str | Path,
                        title: str = "") -> Path:
    """Mean evaluation return (95% CI band) against env steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([h["timesteps"] for h in history])
    y = np.array([h["mean_return"] for h in history])
    e = np.array([h["ci_half_width"] for h in history])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(x, y, marker="o")
    ax.fill_between(x, y - e, y + e, alpha=0.25)
    ax.set_xlabel("env steps (user-periods)")
    ax.set_ylabel("mean return per user (held-out)")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
