"""Observation features: a fixed-length float32 vector from a user's OBSERVABLE history.

The learned simulator, the behavior predictors, off-policy evaluation and serving all describe a
user at the start of period ``t`` with the same vector, computed only from periods strictly
before ``t`` (what the shop saw: visits, views, carts, purchases, revenue, the interventions it
sent and the unsubscribes it received). Two paths compute it and agree exactly:

* incrementally, for ``n`` users at once: :class:`HistoryTracker` (``update`` once per period,
  ``observation`` before each decision) -- used by environments and serving;
* in batch from a user-period panel: :func:`observations_from_panel` -- used for training data.

Features (``observation_names`` gives the order; ``K = FeatureConfig.n_lags``)::

    tenure              min(periods observed, tenure_cap) / tenure_cap
    recency             min(periods since the last purchase, recency_cap) / recency_cap
                        (1 when the user never purchased)
    frequency           purchase events per observed period
    visit_rate          share of observed periods with a visit
    monetary            log1p(mean basket) = log1p(total revenue / purchase events), 0 if none
    visited_lag{k}      1 if the user visited in period t-k (k = 1..K), else 0
    purchased_lag{k}    1 if the user purchased in period t-k
    log_revenue_lag{k}  log1p(revenue in period t-k)
    contacted_lag{k}    1 if an intervention other than ``none`` was sent in period t-k
    contacts_4          share of the last 4 periods with a contact (the last 1 is contacted_lag1)
    contacts_8          share of the last 8 periods with a contact
    coupons_4           share of the last 4 periods with a discount action
    coupons_8           share of the last 8 periods with a discount action
    since_contact       min(periods since the last contact, recency_cap) / recency_cap
                        (1 when never contacted)
    buy_rate_contacted    (purchase periods among contacted periods + s * r) / (contacted + s)
    buy_rate_uncontacted  same over uncontacted periods; r = overall purchase-period rate,
                          s = FeatureConfig.shrinkage (shrinks thin histories towards r)
    contact_lift        buy_rate_contacted - buy_rate_uncontacted
    email_unsubscribed  1 once the user unsubscribed from email
    push_unsubscribed   1 once the user unsubscribed from push
    since_email         min(periods since the last action on the email channel, recency_cap)
                        / recency_cap (1 when never); likewise since_push (push channel) and
    since_coupon        since_coupon (discount actions)
    email_visit_lift    how THIS user responds to each channel: the visit-period rate in
    push_visit_lift     periods with an email (push) message, shrunk by s towards the rate in
                        uncontacted periods u, minus u (u itself shrunk by s towards the
                        overall visit-period rate); 0 without such periods
    coupon_buy_lift     the same for the purchase-period rate in discount periods, against
                        buy_rate_uncontacted

Windows reaching before the user's first period count the missing periods as 0 (no visit, no
contact). An unsubscribe seen in a panel is attributed to the channel of that period's
intervention (to ``email`` when the period has no channelled intervention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from predictors.config_checks import check_int, check_number
from predictors.contract import ActionSpec, DatasetSpec

#: Columns :func:`observations_from_panel` reads.
PANEL_COLUMNS = ("user_id", "period", "visits", "purchases", "revenue", "action_index",
                 "unsubscribes")


@dataclass(frozen=True)
class FeatureConfig:
    """Options of the observation vector.

    Attributes:
        n_lags: How many past periods get their own visited/purchased/revenue/contacted slot.
        recency_cap: Periods at which recency and since_contact saturate (value 1).
        tenure_cap: Periods at which tenure saturates (value 1).
        shrinkage: Pseudo-count pulling contacted/uncontacted purchase rates to the overall one.
    """

    n_lags: int = 4
    recency_cap: int = 26
    tenure_cap: int = 52
    shrinkage: float = 2.0

    def __post_init__(self) -> None:
        check_int(self, "n_lags", "recency_cap", "tenure_cap", ge=1)
        check_number(self, "shrinkage", ge=0)


def observation_names(config: FeatureConfig | None = None) -> list[str]:
    """Names of the observation columns, in order (see the module docstring).

    Example:
        >>> names = observation_names()
        >>> len(names), names[:3]
        (37, ['tenure', 'recency', 'frequency'])
    """
    config = config or FeatureConfig()
    names = ["tenure", "recency", "frequency", "visit_rate", "monetary"]
    for k in range(1, config.n_lags + 1):
        names += [f"visited_lag{k}", f"purchased_lag{k}", f"log_revenue_lag{k}",
                  f"contacted_lag{k}"]
    names += ["contacts_4", "contacts_8", "coupons_4", "coupons_8", "since_contact",
              "buy_rate_contacted", "buy_rate_uncontacted", "contact_lift",
              "email_unsubscribed", "push_unsubscribed", "since_email", "since_push",
              "since_coupon", "email_visit_lift", "push_visit_lift", "coupon_buy_lift"]
    return names


def _action_masks(actions: tuple[ActionSpec, ...] | DatasetSpec) -> tuple[np.ndarray, ...]:
    """Per action index: contact, discount, email / push channel, email / push message."""
    if isinstance(actions, DatasetSpec):
        actions = actions.actions
    if not actions:
        raise ValueError("the action catalog is empty; features need the catalog's kinds")
    contact = np.array([a.kind != "none" for a in actions], dtype=bool)
    coupon = np.array([a.kind == "discount" for a in actions], dtype=bool)
    email = np.array([a.channel == "email" for a in actions], dtype=bool)
    push = np.array([a.channel == "push" for a in actions], dtype=bool)
    message = np.array([a.kind == "message" for a in actions], dtype=bool)
    return contact, coupon, email, push, email & message, push & message


def _lookup(mask: np.ndarray, action_index: np.ndarray) -> np.ndarray:
    """``mask[action_index]`` with out-of-catalog indices (e.g. -1 = not logged) -> False."""
    idx = np.asarray(action_index)
    ok = (idx >= 0) & (idx < len(mask))
    out = np.zeros(idx.shape, dtype=bool)
    out[ok] = mask[idx[ok].astype(np.int64)]
    return out


def _assemble(config: FeatureConfig, *, tenure, since_purchase, n_purchases, n_visit_periods,
              revenue_total, lag_visited, lag_purchased, lag_logrev, lag_contacted,
              contacts_4, contacts_8, coupons_4, coupons_8, since_contact,
              n_contacted, buys_contacted, n_uncontacted, buys_uncontacted,
              email_unsub, push_unsub, since_email, since_push, since_coupon, n_email,
              visits_email, n_push, visits_push, n_coupon, buys_coupon,
              visits_uncontacted) -> np.ndarray:
    """Shared arithmetic of both paths (inputs float64 arrays of shape (n,) or (n, K))."""
    ten = np.maximum(tenure, 1.0)
    overall = (buys_contacted + buys_uncontacted) / ten
    s = config.shrinkage

    def shrunk(hits, periods, prior):
        return (hits + s * prior) / np.maximum(periods + s, 1e-12)

    rate_c = shrunk(buys_contacted, n_contacted, overall)
    rate_u = shrunk(buys_uncontacted, n_uncontacted, overall)
    visit_all = n_visit_periods / ten
    visit_u = shrunk(visits_uncontacted, n_uncontacted, visit_all)
    mean_basket = np.where(n_purchases > 0, revenue_total / np.maximum(n_purchases, 1.0), 0.0)
    cap = float(config.recency_cap)
    cols = [
        np.minimum(tenure, config.tenure_cap) / config.tenure_cap,
        np.minimum(since_purchase, cap) / cap,
        n_purchases / ten,
        n_visit_periods / ten,
        np.log1p(mean_basket),
    ]
    tail = [contacts_4 / 4.0, contacts_8 / 8.0, coupons_4 / 4.0, coupons_8 / 8.0,
            np.minimum(since_contact, cap) / cap, rate_c, rate_u, rate_c - rate_u,
            email_unsub, push_unsub, np.minimum(since_email, cap) / cap,
            np.minimum(since_push, cap) / cap, np.minimum(since_coupon, cap) / cap,
            shrunk(visits_email, n_email, visit_u) - visit_u,
            shrunk(visits_push, n_push, visit_u) - visit_u,
            shrunk(buys_coupon, n_coupon, rate_u) - rate_u]
    # written column by column into the float32 result (the same rounding as one astype at
    # the end, without the float64 intermediates of stacking); lags interleaved per period
    n_lag = 4 * lag_visited.shape[1]
    obs = np.empty((len(tenure), len(cols) + n_lag + len(tail)), np.float32)
    for j, col in enumerate(cols):
        obs[:, j] = col
    for j, lag in enumerate((lag_visited, lag_purchased, lag_logrev, lag_contacted)):
        obs[:, len(cols) + j:len(cols) + n_lag:4] = lag
    for j, col in enumerate(tail, len(cols) + n_lag):
        obs[:, j] = col
    return obs


def take_rows(values: np.ndarray, index: np.ndarray | slice) -> np.ndarray:
    """``values[index]`` as a new array (an integer or boolean index copies already; a slice
    is copied)."""
    if isinstance(index, np.ndarray) and index.dtype != object:
        return values[index]
    return values[index].copy()


def _count(window: np.ndarray, k: int) -> np.ndarray:
    """Sum of the first ``k`` columns of a 0/1 window ``(n, >= k)`` (exact in any order; column
    adds are faster than a row reduction over so few columns)."""
    out = window[:, 0].copy()
    for j in range(1, k):
        out += window[:, j]
    return out


class HistoryTracker:
    """Incremental observation features for ``n`` users (vectorised over users).

    Call :meth:`observation` before each decision and :meth:`update` once the period's outcome
    is known. A fresh tracker describes users with no history (tenure 0).

    Args:
        n: Number of users.
        actions: The action catalog (or a DatasetSpec), to know contacts, discounts, channels.
        config: Feature options.

    Example:
        >>> from predictors.contract import default_catalog
        >>> tr = HistoryTracker(2, default_catalog())
        >>> tr.update(visits=[1, 0], views=[2, 0], carts=[1, 0], purchases=[1, 0],
        ...           revenue=[30.0, 0.0], action_index=[1, 0],
        ...           unsubscribed_email=[False, False], unsubscribed_push=[False, False])
        >>> tr.observation().shape
        (2, 37)
    """

    _FIELDS = ("tenure", "since_purchase", "n_purchases", "n_visit_periods", "revenue_total",
               "since_contact", "n_contacted", "buys_contacted", "n_uncontacted",
               "buys_uncontacted", "email_unsub", "push_unsub", "since_email", "since_push",
               "since_coupon", "n_email", "visits_email", "n_push", "visits_push", "n_coupon",
               "buys_coupon", "visits_uncontacted")
    _WINDOWS = ("lag_visited", "lag_purchased", "lag_logrev", "lag_contacted", "win_contact",
                "win_coupon")

    def __init__(self, n: int, actions: tuple[ActionSpec, ...] | DatasetSpec,
                 config: FeatureConfig | None = None) -> None:
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"`n` must be an int >= 0; got {n!r}")
        self.n = int(n)
        self.config = config or FeatureConfig()
        (self._contact, self._coupon, self._email, self._push, self._email_msg,
         self._push_msg) = _action_masks(actions)
        self.n_features = len(observation_names(self.config))
        k, w = self.config.n_lags, 8
        self.arrays: dict[str, np.ndarray] = {f: np.zeros(self.n) for f in self._FIELDS}
        self.arrays["since_purchase"][:] = np.inf
        for f in ("since_contact", "since_email", "since_push", "since_coupon"):
            self.arrays[f][:] = np.inf
        for f in self._WINDOWS[:4]:
            self.arrays[f] = np.zeros((self.n, k))
        for f in self._WINDOWS[4:]:
            self.arrays[f] = np.zeros((self.n, w))

    def copy(self) -> HistoryTracker:
        """A deep copy."""
        new = object.__new__(HistoryTracker)
        new.__dict__.update(self.__dict__)
        new.arrays = {k: v.copy() for k, v in self.arrays.items()}
        return new

    def subset(self, index: np.ndarray) -> HistoryTracker:
        """A tracker of the users ``index`` (positions or boolean mask), copied."""
        new = object.__new__(HistoryTracker)
        new.__dict__.update(self.__dict__)
        new.arrays = {k: take_rows(v, index) for k, v in self.arrays.items()}
        new.n = len(new.arrays["tenure"])
        return new

    def update(self, visits, views, carts, purchases, revenue, action_index,
               unsubscribed_email, unsubscribed_push) -> None:
        """Record one period for every user.

        Args:
            visits, views, carts, purchases: Event counts of the period, shape (n,).
            revenue: Gross revenue of the period, shape (n,).
            action_index: Catalog index of the period's intervention, shape (n,); negative =
                none logged.
            unsubscribed_email, unsubscribed_push: Whether the user is unsubscribed from the
                channel after this period (or unsubscribed during it), shape (n,).
        """
        a = self.arrays
        visited = (np.asarray(visits) > 0).astype(float)
        n_buy = np.asarray(purchases, dtype=float)
        bought = (n_buy > 0).astype(float)
        rev = np.asarray(revenue, dtype=float)
        act = np.asarray(action_index)
        contacted = _lookup(self._contact, act).astype(float)
        coupon = _lookup(self._coupon, act).astype(float)
        if not (len(visited) == len(rev) == len(act) == self.n):
            raise ValueError(f"update() arrays must have length n={self.n}")

        a["tenure"] += 1.0
        a["since_purchase"] = np.where(bought > 0, 1.0, a["since_purchase"] + 1.0)
        a["since_contact"] = np.where(contacted > 0, 1.0, a["since_contact"] + 1.0)
        a["n_purchases"] += n_buy
        a["n_visit_periods"] += visited
        a["revenue_total"] += rev
        a["n_contacted"] += contacted
        a["buys_contacted"] += bought * contacted
        a["n_uncontacted"] += 1.0 - contacted
        a["buys_uncontacted"] += bought * (1.0 - contacted)
        a["visits_uncontacted"] += visited * (1.0 - contacted)
        for name, mask in (("since_email", self._email), ("since_push", self._push),
                           ("since_coupon", self._coupon)):
            a[name] = np.where(_lookup(mask, act), 1.0, a[name] + 1.0)
        email_msg = _lookup(self._email_msg, act).astype(float)
        push_msg = _lookup(self._push_msg, act).astype(float)
        a["n_email"] += email_msg
        a["visits_email"] += visited * email_msg
        a["n_push"] += push_msg
        a["visits_push"] += visited * push_msg
        a["n_coupon"] += coupon
        a["buys_coupon"] += bought * coupon
        a["email_unsub"] = np.maximum(a["email_unsub"], np.asarray(unsubscribed_email, float))
        a["push_unsub"] = np.maximum(a["push_unsub"], np.asarray(unsubscribed_push, float))
        for name, new in (("lag_visited", visited), ("lag_purchased", bought),
                          ("lag_logrev", np.log1p(rev)), ("lag_contacted", contacted),
                          ("win_contact", contacted), ("win_coupon", coupon)):
            buf = a[name]
            buf[:, 1:] = buf[:, :-1].copy()
            buf[:, 0] = new

    def observation(self) -> np.ndarray:
        """The observation of every user before the next decision, shape (n, d), float32."""
        a = self.arrays
        return _assemble(
            self.config, tenure=a["tenure"], since_purchase=a["since_purchase"],
            n_purchases=a["n_purchases"], n_visit_periods=a["n_visit_periods"],
            revenue_total=a["revenue_total"], lag_visited=a["lag_visited"],
            lag_purchased=a["lag_purchased"], lag_logrev=a["lag_logrev"],
            lag_contacted=a["lag_contacted"],
            contacts_4=_count(a["win_contact"], 4), contacts_8=_count(a["win_contact"], 8),
            coupons_4=_count(a["win_coupon"], 4), coupons_8=_count(a["win_coupon"], 8),
            since_contact=a["since_contact"],
            n_contacted=a["n_contacted"], buys_contacted=a["buys_contacted"],
            n_uncontacted=a["n_uncontacted"], buys_uncontacted=a["buys_uncontacted"],
            email_unsub=a["email_unsub"], push_unsub=a["push_unsub"],
            **{f: a[f] for f in self._FIELDS[12:]})


def _check_panel(panel: pd.DataFrame) -> None:
    missing = [c for c in PANEL_COLUMNS if c not in panel.columns]
    if missing:
        raise ValueError(f"panel lacks columns {missing}; expected at least {list(PANEL_COLUMNS)}")
    uid = panel["user_id"].to_numpy()
    per = panel["period"].to_numpy().astype(np.int64)
    if len(panel) > 1:
        same = uid[1:] == uid[:-1]
        bad = np.flatnonzero(same & (per[1:] != per[:-1] + 1))
        if len(bad):
            i = int(bad[0]) + 1
            raise ValueError(
                f"panel row {i}: expected period {per[i - 1] + 1} for user {uid[i]!r} "
                f"(rows sorted by user_id, period, one per period); found {per[i]}")


def observations_from_panel(panel: pd.DataFrame,
                            spec: DatasetSpec | tuple[ActionSpec, ...],
                            config: FeatureConfig | None = None) -> np.ndarray:
    """Observation at every row of a user-period panel, from the user's earlier rows only.

    Args:
        panel: Rows sorted by ``user_id, period`` with one row per consecutive period of each
            user; needs the columns in :data:`PANEL_COLUMNS` (``action_index`` < 0 or NaN =
            no intervention logged).
        spec: The dataset spec (or action catalog) giving each action's kind and channel.
        config: Feature options.

    Returns:
        Array of shape (len(panel), d), float32, row ``i`` describing the user at the start of
        row ``i``'s period (equal to :class:`HistoryTracker` fed the same periods).

    Raises:
        ValueError: A column is missing or rows are not consecutive periods per user.
    """
    config = config or FeatureConfig()
    _check_panel(panel)
    contact_m, coupon_m, email_m, push_m, email_msg_m, push_msg_m = _action_masks(spec)
    n = len(panel)
    uid = panel["user_id"].to_numpy()
    new_user = np.ones(n, dtype=bool)
    if n > 1:
        new_user[1:] = uid[1:] != uid[:-1]
    starts = np.flatnonzero(new_user)
    group_start = np.repeat(starts, np.diff(np.append(starts, n)))
    pos = np.arange(n) - group_start  # periods observed before this row = tenure

    act_raw = pd.to_numeric(panel["action_index"], errors="coerce").to_numpy(dtype=float)
    act = np.where(np.isnan(act_raw), -1, act_raw).astype(np.int64)
    visited = (panel["visits"].to_numpy(dtype=float) > 0).astype(float)
    n_buy = panel["purchases"].to_numpy(dtype=float)
    bought = (n_buy > 0).astype(float)
    rev = panel["revenue"].to_numpy(dtype=float)
    rev = np.where(np.isnan(rev), 0.0, rev)
    contacted = _lookup(contact_m, act).astype(float)
    coupon = _lookup(coupon_m, act).astype(float)
    unsub = panel["unsubscribes"].to_numpy(dtype=float) > 0
    unsub_push = (unsub & _lookup(push_m, act)).astype(float)
    unsub_email = (unsub & ~_lookup(push_m, act)).astype(float)
    email_msg = _lookup(email_msg_m, act).astype(float)
    push_msg = _lookup(push_msg_m, act).astype(float)

    groups = np.cumsum(new_user)

    def before(x: np.ndarray) -> np.ndarray:
        """Sum of x over the user's rows strictly before each row, summed in time order."""
        inclusive = pd.Series(x).groupby(groups).cumsum().to_numpy()
        out = np.zeros(n)
        out[1:] = inclusive[:-1]
        out[new_user] = 0.0
        return out

    def lag(x: np.ndarray, k: int) -> np.ndarray:
        out = np.zeros(n)
        if k < n:
            out[k:] = x[:-k]
        out[pos < k] = 0.0
        return out

    def window(x: np.ndarray, w: int) -> np.ndarray:
        return sum(lag(x, k) for k in range(1, w + 1))

    def since(event: np.ndarray) -> np.ndarray:
        idx = np.where(event > 0, np.arange(n), -1)
        last = np.maximum.accumulate(idx)  # last event row at or before each row
        prev = np.full(n, -1)
        prev[1:] = last[:-1]
        valid = prev >= group_start
        return np.where(valid, np.arange(n) - prev, np.inf).astype(float)

    k = config.n_lags
    lv = np.stack([lag(visited, i) for i in range(1, k + 1)], axis=1)
    lp = np.stack([lag(bought, i) for i in range(1, k + 1)], axis=1)
    lr = np.stack([lag(np.log1p(rev), i) for i in range(1, k + 1)], axis=1)
    lc = np.stack([lag(contacted, i) for i in range(1, k + 1)], axis=1)
    return _assemble(
        config, tenure=pos.astype(float), since_purchase=since(bought),
        n_purchases=before(n_buy), n_visit_periods=before(visited),
        revenue_total=before(rev), lag_visited=lv, lag_purchased=lp,
        lag_logrev=lr, lag_contacted=lc, contacts_4=window(contacted, 4),
        contacts_8=window(contacted, 8), coupons_4=window(coupon, 4),
        coupons_8=window(coupon, 8), since_contact=since(contacted),
        n_contacted=before(contacted), buys_contacted=before(bought * contacted),
        n_uncontacted=before(1.0 - contacted), buys_uncontacted=before(bought * (1 - contacted)),
        email_unsub=np.minimum(before(unsub_email), 1.0),
        push_unsub=np.minimum(before(unsub_push), 1.0),
        since_email=since(_lookup(email_m, act).astype(float)),
        since_push=since(_lookup(push_m, act).astype(float)), since_coupon=since(coupon),
        n_email=before(email_msg), visits_email=before(visited * email_msg),
        n_push=before(push_msg), visits_push=before(visited * push_msg),
        n_coupon=before(coupon), buys_coupon=before(bought * coupon),
        visits_uncontacted=before(visited * (1.0 - contacted)))

