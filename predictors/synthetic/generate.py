"""Write a synthetic dataset in the data contract, plus ``truth/`` that real data never has.

Files: ``dataset.json``, ``events.parquet`` (visit, view, cart, fav, purchase with gross revenue,
unsubscribe with null item), ``interventions.parquet`` (one row per user-period decision,
``none`` included, at the period start, with its exact propensity), ``users.parquet``
(observable static features only), and ``truth/``: ``world.json`` (all parameters),
``users.parquet`` (latent segment and traits), ``outcomes.parquet`` (per logged user-period
and catalog action: the TRUE ``p_visit, p_purchase, expected_revenue, p_churn,
p_unsubscribe, expected_reward`` given the user's state then; float32) and ``states.parquet``
(latent state and observable-history tracker of every user at the log's start and end, for
rollouts from logged users: :func:`read_start_states`).

Generation is vectorised over users: one numpy pass per period.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from predictors.contract import DatasetSpec
from predictors.dataset import write_dataset
from predictors.features import FeatureConfig, HistoryTracker
from predictors.io import atomic_path, write_json, write_parquet
from predictors.synthetic.logging_policy import make_logging_policy, sample_actions
from predictors.synthetic.rollout import StartStates, burn_in, sample_with_orders, track
from predictors.synthetic.world import DYNAMIC, TRAITS, World, WorldConfig, WorldState

ORIGIN = "2025-01-06T00:00:00Z"
_CHANNELS = np.array(["organic", "paid_search", "social", "affiliate", "referral"])
_REGIONS = np.array(["north", "south", "east", "west"])
#: Acquisition-channel probabilities per segment index (observable, weakly informative).
_CHANNEL_P = np.array([[.45, .2, .1, .05, .2], [.35, .3, .15, .1, .1], [.1, .25, .15, .4, .1],
                       [.25, .3, .3, .1, .05], [.3, .3, .2, .1, .1], [.4, .25, .15, .1, .1]])


@dataclass(frozen=True)
class GenerateConfig:
    """Options of :func:`generate`.

    Attributes:
        n_users: Number of users.
        n_periods: Logged periods (weeks).
        logging: ``campaign`` (targeting rule + exploration + holdout) or ``uniform``.
        seed: Seed of the one random generator behind everything.
        holdout_share: Share of users in the universal control group (campaign logging only).
        n_items: Size of the item catalog behind item ids.
        world: World parameters.
        features: Observation options the logging policy reads.
    """

    n_users: int = 10_000
    n_periods: int = 52
    logging: str = "campaign"
    seed: int = 0
    holdout_share: float = 0.1
    n_items: int = 2000
    world: WorldConfig = field(default_factory=WorldConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_periods < 1:
            raise ValueError(f"`users` and `periods` must be >= 1; got {self.n_users}, "
                             f"{self.n_periods}")
        if self.logging not in ("campaign", "uniform"):
            raise ValueError(f"`logging` must be 'campaign' or 'uniform'; got {self.logging!r}")
        if not (0.0 <= self.holdout_share < 1.0):
            raise ValueError(f"`holdout_share` must be in [0, 1); got {self.holdout_share!r}")


#: Loyalty tiers by pre-log orders: ``none`` (0), ``silver`` (1-2), ``gold`` (3+).
_TIERS = np.array(["none", "silver", "gold"])


def crm_attributes(state: WorldState, orders: np.ndarray,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Static CRM attributes of the users table that real shops hold (see the world docstring).

    ``push_opt_in`` (app installed with push allowed; push reaches only them),
    ``first_order_coupon`` (the first order used the welcome coupon, w.p. ``s_c / (1 + s_c)``
    for coupon sensitivity ``s_c``) and ``loyalty_tier`` (from the pre-log orders ``orders``).
    """
    s_c = state.coupon_sensitivity
    tier = _TIERS[np.digitize(orders, [0.5, 2.5])]
    return {"push_opt_in": state.push_opt_in > 0.5,
            "first_order_coupon": rng.random(state.n) < s_c / (1.0 + s_c),
            "loyalty_tier": tier}


def users_table(world: WorldConfig, state: WorldState, orders: np.ndarray,
                holdout: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The observable users table (``user_id`` = position): sign-up date, acquisition channel,
    region, holdout flag and the CRM attributes of :func:`crm_attributes`."""
    n = state.n
    origin_us = int(pd.Timestamp(ORIGIN).value // 1000)
    period_us = 7 * 86_400 * 1_000_000
    seg_names = np.array(world.segment_names)
    weeks_before = np.where(seg_names[state.segment] == "new", rng.integers(0, 3, n),
                            rng.integers(12, 156, n))
    cum = np.cumsum(_CHANNEL_P[np.minimum(state.segment, len(_CHANNEL_P) - 1)], axis=1)
    channel = _CHANNELS[(rng.random(n)[:, None] > cum).sum(axis=1).clip(0, 4)]
    return pd.DataFrame({
        "user_id": np.arange(n, dtype=np.int64),
        "signup_date": pd.to_datetime(origin_us - weeks_before * period_us, unit="us", utc=True),
        "acquisition_channel": channel, "region": _REGIONS[rng.integers(0, 4, n)],
        "holdout": holdout, **crm_attributes(state, orders, rng)})


def sample_start_users(world: World, n: int, seed: int | np.random.Generator,
                       observed_periods: int = 52,
                       features: FeatureConfig | None = None) -> tuple[StartStates, pd.DataFrame]:
    """Fresh users as a generated log of ``observed_periods`` leaves them (campaign logging, no
    control group), with the users table a generated dataset would hold for them.

    Example:
        >>> start, users = sample_start_users(World(), 5, seed=0, observed_periods=2)
        >>> start.n, "push_opt_in" in users
        (5, True)
    """
    rng = np.random.default_rng(seed)
    start, orders = sample_with_orders(world, n, rng, observed_periods, features)
    return start, users_table(world.config, start.state, orders, np.zeros(n, dtype=bool), rng)


def _period_events(out: dict, users: np.ndarray, start_us: int, period_us: int,
                   item_p: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Event rows of one period (timestamps in microseconds since the epoch)."""
    visit = out["visits"] > 0
    t_visit = start_us + (rng.random(len(users)) * 0.9 * period_us).astype(np.int64)
    parts = []
    minute = 60_000_000

    def add(mask_or_counts, kind, offset_lo, offset_hi, revenue=None, item=True):
        idx = np.repeat(np.arange(len(users)), mask_or_counts.astype(np.int64))
        m = len(idx)
        ts = t_visit[idx] + (offset_lo + rng.random(m) * (offset_hi - offset_lo)).astype(np.int64)
        items = (rng.choice(len(item_p), size=m, p=item_p) if item
                 else np.full(m, -1, dtype=np.int64))
        rev = revenue[idx] if revenue is not None else np.full(m, np.nan)
        parts.append((users[idx], ts, np.full(m, kind, dtype=np.int8), items, rev))

    add(visit, 0, 0, 1, item=False)
    add(out["views"], 1, minute, 30 * minute)
    add(out["favs"], 4, minute, 30 * minute)
    add(out["carts"], 2, 30 * minute, 40 * minute)
    add(out["purchases"], 3, 40 * minute, 50 * minute, revenue=out["revenue"])
    unsub = out["unsub_email"] | out["unsub_push"]
    idx = np.flatnonzero(unsub)
    parts.append((users[idx], start_us + (rng.random(len(idx)) * 86_400e6).astype(np.int64),
                  np.full(len(idx), 5, dtype=np.int8), np.full(len(idx), -1, dtype=np.int64),
                  np.full(len(idx), np.nan)))
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    order = np.lexsort((cols[1], cols[0]))
    return dict(zip(("user_id", "ts", "kind", "item", "revenue"), (c[order] for c in cols),
                    strict=True))


def _outcome_table(world: World, state: WorldState, users: np.ndarray,
                   period: int) -> pa.Table:
    """TRUE one-period expectations of every catalog action, user-major then action."""
    n, k = state.n, world.n_actions
    outs = [world.expected_outcomes(state, np.full(n, a)) for a in range(k)]

    def col(name: str) -> pa.Array:
        return pa.array(np.stack([getattr(o, name) for o in outs], axis=1).ravel()
                        .astype(np.float32))

    action = pa.DictionaryArray.from_arrays(pa.array(np.tile(np.arange(k, dtype=np.int32), n)),
                                            pa.array(world.action_names))
    return pa.table({
        "user_id": pa.array(np.repeat(users, k)), "period": pa.array(np.full(n * k, period,
                                                                            dtype=np.int32)),
        "action": action, "p_visit": col("p_visit"), "p_purchase": col("p_purchase"),
        "expected_revenue": col("expected_revenue"), "p_churn": col("p_churn"),
        "p_unsubscribe": col("p_unsubscribe"), "expected_reward": col("expected_reward")})


def _states_frame(start: StartStates, period: int, users: np.ndarray) -> pd.DataFrame:
    cols: dict[str, np.ndarray] = {"user_id": users, "period": np.full(len(users), period)}
    cols.update({k: v for k, v in start.state.to_columns().items() if k in DYNAMIC})
    for name, arr in start.history.arrays.items():
        if arr.ndim == 1:
            cols[f"hist_{name}"] = arr
        else:
            for j in range(arr.shape[1]):
                cols[f"hist_{name}_{j}"] = arr[:, j]
    return pd.DataFrame(cols)


def read_start_states(folder: str | Path, period: str = "end") -> StartStates:
    """Latent state + observable history of a generated dataset's users (``start`` or ``end``).

    Rollouts from these continue the logged users exactly where the log leaves them.
    """
    import json

    truth = Path(folder) / "truth"
    if period not in ("start", "end"):
        raise ValueError(f"`period` must be 'start' or 'end'; got {period!r}")
    if not (truth / "states.parquet").is_file():
        raise FileNotFoundError(f"{truth / 'states.parquet'}: not a generated dataset")
    meta = json.loads((truth / "world.json").read_text())
    cfg = _config_from_dict(meta)
    users = pd.read_parquet(truth / "users.parquet")
    states = pd.read_parquet(truth / "states.parquet")
    at = 0 if period == "start" else cfg.n_periods
    states = states[states["period"] == at].set_index("user_id").loc[users["user_id"]]
    seg = {n: i for i, n in enumerate(cfg.world.segment_names)}
    # datasets written before push opt-in existed reached every user by push
    traits = {t: users[t].to_numpy() if t in users else np.ones(len(users))
              for t in TRAITS[1:]}
    traits["segment"] = users["segment"].map(seg).to_numpy().astype(np.int64)
    dyn = {d: states[d].to_numpy() for d in DYNAMIC}
    history = HistoryTracker(len(users), cfg.world.actions, cfg.features)
    for name, arr in history.arrays.items():
        if arr.ndim == 1:
            arr[:] = states[f"hist_{name}"].to_numpy()
        else:
            for j in range(arr.shape[1]):
                arr[:, j] = states[f"hist_{name}_{j}"].to_numpy()
    return StartStates(WorldState(**traits, **dyn), history)


def read_world(folder: str | Path) -> World:
    """The TRUE world of a generated dataset, rebuilt from ``truth/world.json``."""
    import json

    path = Path(folder) / "truth" / "world.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a generated dataset (real data has no truth)")
    return World(_config_from_dict(json.loads(path.read_text())).world)


def _config_from_dict(meta: dict) -> GenerateConfig:
    from predictors.contract import ActionSpec
    from predictors.synthetic.world import SegmentProfile

    w = dict(meta["world"])
    w["segments"] = tuple(SegmentProfile(**s) for s in w["segments"])
    w["actions"] = tuple(ActionSpec(**a) for a in w["actions"])
    g = dict(meta["generate"])
    return GenerateConfig(**{**g, "world": WorldConfig(**w),
                             "features": FeatureConfig(**meta["features"])})


def generate(config: GenerateConfig, out: str | Path, *, progress: bool = False) -> Path:
    """Simulate the shop and write the dataset folder ``out`` (see the module docstring).

    Example:
        >>> import tempfile
        >>> folder = generate(GenerateConfig(n_users=20, n_periods=3), tempfile.mkdtemp())
        >>> sorted(p.name for p in (folder / "truth").iterdir())
        ['outcomes.parquet', 'states.parquet', 'users.parquet', 'world.json']
    """
    out = Path(out)
    rng = np.random.default_rng(config.seed)
    world = World(config.world)
    actions = config.world.actions
    n, periods = config.n_users, config.n_periods
    spec = DatasetSpec(actions=actions, period="7D", currency="USD", source="nudgegym synthetic",
                       licence="generated; free to use", origin=ORIGIN,
                       extra={"generator": {"users": n, "periods": periods,
                                            "logging": config.logging, "seed": config.seed}})
    users = np.arange(n, dtype=np.int64)
    state = world.sample_users(n, rng)
    orders = burn_in(world, state, config.world.burn_in, rng)
    holdout = (rng.random(n) < config.holdout_share) if config.logging == "campaign" \
        else np.zeros(n, dtype=bool)
    policy = make_logging_policy(config.logging, actions)
    history = HistoryTracker(n, actions, config.features)
    states = [_states_frame(StartStates(state, history), 0, users)]
    origin_us = int(pd.Timestamp(ORIGIN).value // 1000)
    period_us = spec.period_seconds * 1_000_000
    ranks = np.arange(1, config.n_items + 1, dtype=float)
    item_p = ranks**-1.1 / np.sum(ranks**-1.1)
    events, inter_action, inter_p = [], [], []
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    with atomic_path(truth / "outcomes.parquet") as tmp:
        writer = None
        for t in tqdm(range(periods), desc="generate", disable=not progress, unit="period"):
            probs = policy.action_probabilities(history.observation(), holdout)
            action = sample_actions(probs, rng)
            inter_action.append(action.astype(np.int8))
            inter_p.append(probs[np.arange(n), action])
            table = _outcome_table(world, state, users, t)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table)
            step = world.step(state, action, rng)
            track(history, step)
            events.append(_period_events(step, users, origin_us + t * period_us, period_us,
                                         item_p, rng))
        writer.close()
    states.append(_states_frame(StartStates(state, history), periods, users))

    kinds = np.array(["visit", "view", "cart", "purchase", "fav", "unsubscribe"])
    ev = {k: np.concatenate([e[k] for e in events]) for k in events[0]}
    events_df = pd.DataFrame({
        "user_id": ev["user_id"],
        "timestamp": pd.to_datetime(ev["ts"], unit="us", utc=True),
        "event_type": pd.Categorical.from_codes(ev["kind"], categories=kinds),
        "item_id": pd.array(np.where(ev["item"] < 0, None, ev["item"]), dtype="Int64"),
        "revenue": ev["revenue"]})
    starts = origin_us + np.arange(periods, dtype=np.int64) * period_us
    inter_df = pd.DataFrame({
        "user_id": np.tile(users, periods),
        "timestamp": pd.to_datetime(np.repeat(starts, n), unit="us", utc=True),
        "action": pd.Categorical.from_codes(np.concatenate(inter_action),
                                            categories=world.action_names),
        "propensity": np.concatenate(inter_p)})
    seg_names = np.array(config.world.segment_names)
    users_df = users_table(config.world, state, orders, holdout, rng)
    write_dataset(out, spec, events_df, inter_df, users_df)

    truth_users = pd.DataFrame({"user_id": users, "segment": seg_names[state.segment],
                                **{t: getattr(state, t) for t in TRAITS[1:]},
                                "holdout": holdout})
    write_parquet(truth / "users.parquet", truth_users)
    write_parquet(truth / "states.parquet", pd.concat(states, ignore_index=True))
    gen = {k: v for k, v in asdict(config).items() if k not in ("world", "features")}
    write_json(truth / "world.json", {"world": config.world.to_dict(), "generate": gen,
                                      "features": asdict(config.features)})
    return out
