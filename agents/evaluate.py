"""Evaluate policies side by side in the learned shop, and in the true world when there is one.

Every policy runs from the same start users (default: the predictor's held-out ``test`` users
at the end of the log) with common random numbers (:func:`envs.rollout.rollout` with one seed),
so per-user differences between two policies are paired. Reported per policy: mean return per
user with its 95% CI, revenue, cost, contacts and coupons per user, churn and unsubscribe
rates, and the paired difference (95% CI) against the best rule. On a generated dataset
(``truth/``) each policy is also run in the TRUE world from the same users' true states at the
end of the log (:func:`predictors.synthetic.true_policy_value`, one seed for all policies), with
the same statistics on true returns.

A policy is written ``rule:NAME[:...]`` (:func:`agents.baselines.parse_rule`), as the folder
of a ``nudgegym train-policy`` run (greedy actions of the trained model by default) or as the
folder of a ``nudgegym tune-rule`` run (its best ``rule:tuned:...``, a rule like the others).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from agents.policy import BasePolicy
from predictors import ConfigError
from predictors.io import atomic_path, write_json, write_parquet, write_text

__all__ = ["EvaluateConfig", "evaluate_policies", "load_policy", "mean_ci"]


@dataclass(frozen=True)
class EvaluateConfig:
    """Options of :func:`evaluate_policies`.

    Attributes:
        horizon: Periods per episode.
        start_users: Predictor split the episodes start from (``test`` by default).
        max_users: Evaluate only the first ``max_users`` start users (0 = all).
        replicates: Simulated copies of each start user (learned shop and true world); CIs
            are over users (paired differences averaged over a user's copies).
        min_rollouts: Simulated episodes per policy to reach at least: ``replicates`` is
            raised to ``ceil(min_rollouts / users)`` when lower (0 = keep ``replicates``).
            Paired differences need about 20,000 episodes for a 95% CI of about +-1%; the
            table states the episodes and the seconds they took.
        seed: Seed of the common random numbers.
        true_value: Also evaluate in the true world when the dataset has ``truth/``.
        stochastic: Sample trained models' actions instead of their greedy action.
        device: Device of trained models.
    """

    horizon: int = 26
    start_users: str = "test"
    max_users: int = 0
    replicates: int = 1
    min_rollouts: int = 20_000
    seed: int = 0
    true_value: bool = True
    stochastic: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.min_rollouts < 0:
            raise ConfigError(f"`min_rollouts` must be >= 0; got {self.min_rollouts}")
        if self.horizon < 1 or self.replicates < 1 or self.max_users < 0:
            raise ConfigError("`horizon` and `replicates` must be >= 1 and `max_users` >= 0; "
                              f"got {self.horizon}, {self.replicates}, {self.max_users}")


def mean_ci(x: np.ndarray, z: float = 1.96) -> dict[str, float]:
    """Mean and normal-approximation 95% CI of the mean of ``x``."""
    x = np.asarray(x, dtype=float)
    half = z * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return {"mean": float(x.mean()), "low": float(x.mean() - half),
            "high": float(x.mean() + half)}


def load_policy(text: str, shop: Any, data: str | Path, cfg: EvaluateConfig) -> BasePolicy:
    """A policy from ``rule:...``, an export or a train-policy run, for the shop's observations.

    When the shop's observation ends with static features and the policy does not read them
    (rules, policies trained without ``static_features``), it is given the history columns.
    """
    from agents.loading import HistoryColumns, reads_static
    from agents.loading import load_policy as load

    names = list(shop.observation_names)
    history = [n for n in names if not n.startswith("static:")]
    if len(history) < len(names) and not reads_static(text):
        return HistoryColumns(load(text, shop.spec, history, data, device=cfg.device,
                                   deterministic=not cfg.stochastic), len(history))
    return load(text, shop.spec, names, data, device=cfg.device,
                deterministic=not cfg.stochastic)


def _resolve_tuned(text: str) -> str:
    """A ``nudgegym tune-rule`` run folder stands for its best rule (``rule:tuned:...``)."""
    if not text.startswith("rule:") and (Path(text) / "tune.json").is_file():
        from agents.tune_rule import read_tuned_rule

        return read_tuned_rule(text)
    return text


def _summary(returns: np.ndarray, extra: dict[str, float]) -> dict[str, Any]:
    return {"return": mean_ci(returns), **extra}


def _sim_stats(res: Any, none: int, coupon: np.ndarray) -> dict[str, float]:
    alive_act = res.action >= 0
    return {"revenue": float(res.revenue.sum(1).mean()), "cost": float(res.cost.sum(1).mean()),
            "contacts": float((alive_act & (res.action != none)).sum(1).mean()),
            "coupons": float((alive_act & coupon[np.clip(res.action, 0, None)]).sum(1).mean()),
            "churn_rate": float(res.churn.any(1).mean()),
            "unsubscribe_rate": float(res.unsubscribe.any(1).mean())}


def room_summary(folder: str | Path) -> dict[str, Any]:
    """The yardstick of a ``nudgegym room`` run, for tables that compare policies with rules:
    the best tuned rule, the observable ceiling and the segment oracle, each vs the best tuned
    rule in percent (paired 95% CI) on the room's own start users.

    Raises:
        ConfigError: ``folder`` is not a room run (no ``room.json``).
    """
    path = Path(folder) / "room.json"
    if not path.is_file():
        raise ConfigError(f"--room {folder}: not a room run (no room.json); expected the --out "
                          "of `nudgegym room`")
    room = json.loads(path.read_text())
    values = {p["name"]: p["value"]["mean"] for p in room["policies"]}
    return {"folder": str(folder), "n_users": room["n_users"], "horizon": room["horizon"],
            "best_rule": room["best_rule"], "best_rule_value": values.get(room["best_rule"]),
            "ceiling": room["ceiling"]["name"],
            "ceiling_value": values.get(room["ceiling"]["name"]),
            "room_pct": room["room"], "oracle_room_pct": room["oracle_room"]}


def evaluate_policies(predictor: str | Path, data: str | Path, policies: list[str],
                      out: str | Path, config: EvaluateConfig | None = None,
                      progress: bool = True, room: str | Path | None = None) -> dict[str, Any]:
    """Evaluate ``policies`` and write ``evaluation.json``, ``evaluation.md`` and plots to ``out``.

    ``room`` (a ``nudgegym room`` run of the same shop) adds the observable ceiling and the
    oracle as the yardstick the table is read against (:func:`room_summary`).

    ``returns.parquet`` holds the per-user returns (columns ``sim|POLICY`` and ``true|POLICY``;
    rows are replicate-major: replicate ``r`` of start user ``i`` is row ``r * n_users + i``),
    so that callers can pair policies across evaluations run with the same users and seed.

    Returns:
        The content of ``evaluation.json``.
    """
    from envs.rollout import rollout
    from envs.shop_env import load_learned_shop

    cfg = config or EvaluateConfig()
    policies = [_resolve_tuned(t) for t in policies]
    if not policies:
        raise ConfigError("give at least one policy (rule:NAME or a train-policy run folder)")
    from agents.loading import reads_static, trained_env

    shop = load_learned_shop(predictor, data, start_users=cfg.start_users,
                             static_in_obs=any(reads_static(t) for t in policies))
    n = len(shop.starts)
    index = np.arange(n if cfg.max_users == 0 else min(n, cfg.max_users))
    replicates = max(cfg.replicates, -(-cfg.min_rollouts // len(index)))
    cfg = replace(cfg, replicates=replicates)
    loaded = {text: load_policy(text, shop, data, cfg) for text in policies}
    names = shop.spec.action_names
    none = names.index("none")
    coupon = np.array([a.kind == "discount" for a in shop.spec.actions])
    truth = cfg.true_value and (Path(data) / "truth" / "world.json").is_file()
    if truth:
        from envs.world_vec_env import world_from_dataset, world_start_states
        from predictors import true_policy_value

        world = world_from_dataset(data)
        tiled = np.tile(index, cfg.replicates)
        w_starts = world_start_states(data, shop.starts.user_ids[tiled])
        static = shop.starts.static[tiled].astype(np.float32)

    sim_returns, true_returns, rows = {}, {}, {}
    t0 = time.perf_counter()
    for text, policy in tqdm(loaded.items(), desc="evaluate", disable=not progress):
        res = rollout(shop, lambda o, m, r, p=policy: p.act(o, r, m), cfg.horizon,
                      seed=cfg.seed, replicates=cfg.replicates, start_index=index)
        sim_returns[text] = res.returns
        rows[text] = {"policy": text, "is_rule": text.startswith("rule:"),
                      "trained_in": trained_env(text),
                      "sim": _summary(res.returns, _sim_stats(res, none, coupon))}
        if truth:
            prng = np.random.default_rng([cfg.seed, 1])

            def act(obs: np.ndarray, p: BasePolicy = policy,
                    prng: np.random.Generator = prng) -> np.ndarray:
                full = np.concatenate([obs.astype(np.float32), static], axis=1)
                return p.act(full, prng).astype(np.int64)

            true_returns[text] = true_policy_value(world, act, w_starts, cfg.horizon,
                                                   seed=cfg.seed)
            rows[text]["true"] = _summary(true_returns[text], {})

    rules = [t for t in loaded if t.startswith("rule:")]
    best = max(rules, key=lambda t: sim_returns[t].mean()) if rules else None
    best_true = max(rules, key=lambda t: true_returns[t].mean()) if rules and truth else None
    for text, row in rows.items():
        if best is not None:
            diff = (sim_returns[text] - sim_returns[best]).reshape(cfg.replicates, -1).mean(0)
            row["sim"]["vs_best_rule"] = mean_ci(diff)
        if best_true is not None:
            diff = (true_returns[text] - true_returns[best_true]).reshape(cfg.replicates, -1)
            row["true"]["vs_best_rule"] = mean_ci(diff.mean(0))
    result = {"n_users": int(len(index)), "horizon": cfg.horizon, "seed": cfg.seed,
              "seconds": time.perf_counter() - t0,
              "replicates": cfg.replicates, "start_users": cfg.start_users,
              "best_rule_sim": best, "best_rule_true": best_true, "has_truth": bool(truth),
              "policies": list(rows.values())}
    if room is not None:
        result["room"] = room_summary(room)
    out = Path(out)
    write_json(out / "evaluation.json", result)
    write_text(out / "evaluation.md", markdown_table(result))
    returns = {f"sim|{t}": r for t, r in sim_returns.items()}
    returns.update({f"true|{t}": r for t, r in true_returns.items()})
    write_parquet(out / "returns.parquet", pd.DataFrame(returns))
    plot_values(result, out / "values.png")
    _copy_learning_curves(loaded, out)
    return result


def markdown_table(result: dict[str, Any]) -> str:
    """The evaluation as a markdown table (money per user over the horizon)."""
    truth = result["has_truth"]
    head = ("| policy | sim return [95% CI] | vs best rule (sim) | revenue | cost | contacts | "
            "coupons | churn | unsub |" + (" TRUE return [95% CI] | vs best rule (true) |"
                                          if truth else ""))
    lines = [f"Evaluation over {result['n_users']} start users x {result['replicates']} "
             f"replicate(s), horizon {result['horizon']} ({result.get('seconds', 0):.0f} s); "
             "best rule in the simulator: "
             f"`{result['best_rule_sim']}`"
             + (f"; in the true world: `{result['best_rule_true']}`" if truth else ""), "",
             head, "|" + "---|" * (head.count("|") - 1)]

    def ci(d: dict[str, float] | None) -> str:
        return "-" if d is None else f"{d['mean']:.2f} [{d['low']:.2f}, {d['high']:.2f}]"

    for row in result["policies"]:
        s = row["sim"]
        name = row["policy"] + (" (trained in the TRUE world)"
                                if row.get("trained_in") == "world" else "")
        cells = [name, ci(s["return"]), ci(s.get("vs_best_rule")), f"{s['revenue']:.2f}",
                 f"{s['cost']:.2f}", f"{s['contacts']:.2f}", f"{s['coupons']:.2f}",
                 f"{s['churn_rate']:.3f}", f"{s['unsubscribe_rate']:.3f}"]
        if truth:
            cells += [ci(row["true"]["return"]), ci(row["true"].get("vs_best_rule"))]
        lines.append("| " + " | ".join(cells) + " |")
    if "room" in result:
        r = result["room"]

        def pct(d: dict[str, float]) -> str:
            return f"{d['mean']:+.1f}% [{d['low']:+.1f}, {d['high']:+.1f}]"

        lines += ["", f"Room (TRUE, `nudgegym room`, {r['n_users']:,} start users at the end of "
                  f"the log, {r['horizon']} periods): best tuned rule `{r['best_rule']}`; "
                  f"observable ceiling ({r['ceiling']}) {pct(r['room_pct'])}, segment oracle "
                  f"{pct(r['oracle_room_pct'])} against it."]
    return "\n".join(lines) + "\n"


def plot_values(result: dict[str, Any], path: str | Path) -> Path:
    """Mean return per policy with 95% CIs (simulator, and true world when known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["policies"]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    for key, dy, label in (("sim", -0.15, "simulator"), ("true", 0.15, "true world")):
        if key == "true" and not result["has_truth"]:
            continue
        r = [row[key]["return"] for row in rows]
        m = np.array([v["mean"] for v in r])
        err = np.array([[v["mean"] - v["low"] for v in r], [v["high"] - v["mean"] for v in r]])
        ax.errorbar(m, y + dy, xerr=err, fmt="o", capsize=3, label=label)
    ax.set_yticks(y, [row["policy"] for row in rows])
    ax.set_xlabel(f"mean return per user over {result['horizon']} periods (95% CI)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def _copy_learning_curves(loaded: dict[str, BasePolicy], out: Path) -> None:
    """Copy each trained policy's learning curve next to the evaluation."""
    for i, text in enumerate(t for t in loaded if not t.startswith("rule:")):
        src = Path(text) / "learning_curve.png"
        if src.is_file():
            with atomic_path(out / f"learning_curve_{i}_{Path(text).name}.png") as tmp:
                tmp.write_bytes(src.read_bytes())
