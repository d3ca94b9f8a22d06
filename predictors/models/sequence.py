"""Panel -> padded per-user tensors, labels and static features.

A panel (one row per user x period, see :mod:`predictors.panel`) becomes arrays of shape
``(n_users, n_steps, ...)``: step ``t`` of user ``u`` is that user's ``t``-th period counted from
their first one; users with shorter histories are right-padded (``valid`` is False there). Every
model reads steps ``< t`` to predict the outcomes of step ``t`` for every action, so right padding
never leaks into a prediction.

Raw row layout (:data:`RAW_COLUMNS`): visits, views, carts, purchases, favs, unsubscribes, revenue.
Actions: ``action_index`` of the panel, ``-1`` when none is logged. Such a row is fed to the
model as the catalog's ``none`` action and its outcomes are attributed to ``none`` (data without
an interventions table logs no sends, so no intervention was made), which is exactly what the
simulator feeds back for a period without a send; without a ``none`` action such rows are fed
as "unknown" and carry no action-conditioned loss.

Labels at step ``t``: visit = visits > 0, purchase = purchases > 0, unsubscribe =
unsubscribes > 0, revenue = log(revenue) on purchase rows with revenue > 0, churn = active at
``t`` and not active at ``t + 1``. Churn has no label at the dataset's last period, and the last
``churn_censor`` labelled periods are masked too: a user quiet at the end of the data may come
back after it (right-censoring), so late "churns" are mostly unobserved returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from predictors.errors import DataValidationError, Problem

RAW_COLUMNS = ("visits", "views", "carts", "purchases", "favs", "unsubscribes", "revenue")
PANEL_COLUMNS = ("user_id", "period", *RAW_COLUMNS, "action_index", "propensity", "active")
_MAX_CATEGORIES = 20


def _numeric_dates(s: pd.Series) -> pd.Series:
    """Datetime columns as days since 1970-01-01 (a numeric feature); others unchanged."""
    if pd.api.types.is_datetime64_any_dtype(s):
        days = (s - pd.Timestamp("1970-01-01", tz=getattr(s.dt, "tz", None))).dt.total_seconds()
        return days / 86400.0
    return s


@dataclass
class StaticEncoder:
    """Static user features: numerics (and dates, as days) standardised, categoricals one-hot.

    Attributes:
        numeric: Numeric column names with their train mean and std.
        categorical: Categorical column names with their kept categories (the most frequent
            ones, up to 20; others encode as all zeros).
    """

    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        """Width of the encoded static vector."""
        return len(self.numeric) + sum(len(v) for v in self.categorical.values())

    @classmethod
    def fit(cls, users: pd.DataFrame | None) -> StaticEncoder:
        """Fit on the users table restricted to training users (``user_id`` + feature columns)."""
        if users is None or users.shape[1] <= 1:
            return cls()
        numeric, categorical = {}, {}
        for col in users.columns:
            if col == "user_id":
                continue
            s = _numeric_dates(users[col])
            if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
                counts = s.dropna().astype(str).value_counts()
                categorical[col] = [str(c) for c in counts.index[:_MAX_CATEGORIES]]
            else:
                v = s.astype("float64")
                mean = float(v.mean()) if v.notna().any() else 0.0
                std = float(v.std(ddof=0)) if v.notna().sum() > 1 else 1.0
                numeric[col] = (mean, std if std > 0 else 1.0)
        return cls(numeric, categorical)

    def transform(self, users: pd.DataFrame | None, user_ids: np.ndarray) -> np.ndarray:
        """Encode the users ``user_ids`` (missing users/values encode as zeros), ``(n, S)``."""
        out = np.zeros((len(user_ids), self.n_features), dtype=np.float32)
        if users is None or self.n_features == 0:
            return out
        missing = [c for c in (*self.numeric, *self.categorical) if c not in users.columns]
        if missing:
            raise DataValidationError(Problem("users", None, missing[0],
                                              "the static columns the predictor was trained on",
                                              f"columns {list(users.columns)}"))
        u = users.drop_duplicates("user_id").set_index("user_id").reindex(pd.Index(user_ids))
        j = 0
        for col, (mean, std) in self.numeric.items():
            raw = pd.to_numeric(_numeric_dates(u[col]), errors="coerce")
            v = (raw.to_numpy(dtype="float64") - mean) / std
            out[:, j] = np.nan_to_num(v, nan=0.0)
            j += 1
        for col, cats in self.categorical.items():
            s = u[col].astype("string")
            for c in cats:
                out[:, j] = (s == c).fillna(False).to_numpy(dtype=bool)
                j += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"numeric": {k: list(v) for k, v in self.numeric.items()},
                "categorical": self.categorical}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StaticEncoder:
        """Inverse of :meth:`to_dict`."""
        return cls({k: (float(v[0]), float(v[1])) for k, v in d["numeric"].items()},
                   {k: [str(c) for c in v] for k, v in d["categorical"].items()})


@dataclass
class PanelTensors:
    """A panel as padded per-user arrays (numpy; models convert them to torch).

    Attributes:
        user_ids: ``(U,)`` user ids, in panel order.
        first_period: ``(U,)`` each user's first period.
        raw: ``(U, T, 7)`` float32 raw counts and revenue (:data:`RAW_COLUMNS`).
        action: ``(U, T)`` int64 action index fed to the model: the logged one, ``none`` when
            none is logged and the catalog has it, -1 otherwise (also on padding).
        loss_action: ``(U, T)`` int64 action the outcomes are attributed to, -1 none.
        propensity: ``(U, T)`` float32 logged propensity, NaN unknown.
        valid: ``(U, T)`` bool, the step exists in the panel.
        churn: ``(U, T)`` float32 churn label, NaN where masked.
        static: ``(U, S)`` float32 encoded static features.
        target: ``(U, T, 7)`` rows the labels are read from when they differ from the rows the
            model reads (a drifted copy, :mod:`predictors.models.dad`); None: ``raw``.
        loss_mask: ``(U, T)`` bool steps that carry a loss; None: ``valid``.
    """

    user_ids: np.ndarray
    first_period: np.ndarray
    raw: np.ndarray
    action: np.ndarray
    loss_action: np.ndarray
    propensity: np.ndarray
    valid: np.ndarray
    churn: np.ndarray
    static: np.ndarray
    target: np.ndarray | None = None
    loss_mask: np.ndarray | None = None

    @property
    def target_raw(self) -> np.ndarray:
        """The rows the labels are read from (``target``, else ``raw``)."""
        return self.raw if self.target is None else self.target

    @property
    def effective_mask(self) -> np.ndarray:
        """The steps that carry a loss (``loss_mask``, else ``valid``)."""
        return self.valid if self.loss_mask is None else self.loss_mask

    @property
    def n_users(self) -> int:
        """Number of users."""
        return len(self.user_ids)

    @property
    def n_rows(self) -> int:
        """Number of valid user-periods."""
        return int(self.valid.sum())

    def subset(self, users: np.ndarray) -> PanelTensors:
        """The users at positions ``users`` (trailing all-padding steps trimmed)."""
        valid = self.valid[users]
        t = int(valid.sum(axis=1).max()) if len(users) else 0
        return PanelTensors(self.user_ids[users], self.first_period[users],
                            self.raw[users, :t], self.action[users, :t],
                            self.loss_action[users, :t], self.propensity[users, :t],
                            valid[:, :t], self.churn[users, :t], self.static[users],
                            None if self.target is None else self.target[users, :t],
                            None if self.loss_mask is None else self.loss_mask[users, :t])

    def keys(self) -> pd.DataFrame:
        """``user_id`` and ``period`` of every valid step, in (user, step) order."""
        uu, tt = np.nonzero(self.valid)
        return pd.DataFrame({"user_id": self.user_ids[uu],
                             "period": (self.first_period[uu] + tt).astype("int32")})


def check_panel(panel: pd.DataFrame) -> None:
    """Raise :class:`DataValidationError` when the panel lacks a column the models read."""
    missing = [c for c in PANEL_COLUMNS if c not in panel.columns]
    if missing:
        raise DataValidationError(Problem("panel", None, missing[0],
                                          f"panel columns {list(PANEL_COLUMNS)}",
                                          f"columns {list(panel.columns)}"))
    a = panel["action_index"].to_numpy()
    if len(a) and (a.min() < -1):
        row = int(np.argmin(a))
        raise DataValidationError(Problem("panel", row + 1, "action_index",
                                          "-1 (unknown) or a catalog index", str(a[row])))


def panel_to_tensors(panel: pd.DataFrame, n_actions: int, none_index: int | None,
                     static: np.ndarray | None = None, churn_censor: int = 4,
                     last_period: int | None = None) -> PanelTensors:
    """Turn a panel into :class:`PanelTensors`.

    Args:
        panel: Panel rows sorted by ``user_id``, ``period`` (see module docstring).
        n_actions: Catalog size; an ``action_index`` >= it is an error.
        none_index: Index of the ``none`` action that unknown actions are attributed to.
        static: ``(U, S)`` encoded static features in the panel's user order (zeros if None).
        churn_censor: Mask churn labels of the last ``churn_censor`` labelled periods.
        last_period: The dataset's last period (default: the panel's largest period).
    """
    check_panel(panel)
    p = panel.sort_values(["user_id", "period"], kind="stable")
    user_codes, user_ids = pd.factorize(p["user_id"], sort=False)
    period = p["period"].to_numpy(dtype=np.int64)
    first = pd.Series(period).groupby(user_codes).transform("min").to_numpy()
    step = period - first
    n_users = len(user_ids)
    n_steps = int(step.max()) + 1 if len(step) else 0
    action = p["action_index"].to_numpy(dtype=np.int64)
    if len(action) and action.max() >= n_actions:
        row = int(np.argmax(action))
        raise DataValidationError(Problem("panel", row + 1, "action_index",
                                          f"an index < {n_actions} (catalog size)",
                                          str(action[row])))
    raw = np.zeros((n_users, n_steps, len(RAW_COLUMNS)), dtype=np.float32)
    raw[user_codes, step] = p[list(RAW_COLUMNS)].to_numpy(dtype=np.float32)
    act = np.full((n_users, n_steps), -1, dtype=np.int64)
    act[user_codes, step] = action
    if none_index is not None:
        act[user_codes, step] = np.where(action < 0, none_index, action)
    loss_act = act.copy()
    prop = np.full((n_users, n_steps), np.nan, dtype=np.float32)
    prop[user_codes, step] = p["propensity"].to_numpy(dtype=np.float32)
    valid = np.zeros((n_users, n_steps), dtype=bool)
    valid[user_codes, step] = True
    active = np.zeros((n_users, n_steps + 1), dtype=bool)
    active[user_codes, step] = p["active"].to_numpy(dtype=bool)
    churn = (active[:, :-1] & ~active[:, 1:]).astype(np.float32)
    last = int(period.max()) if last_period is None and len(period) else (last_period or 0)
    per = first[np.unique(user_codes, return_index=True)[1]] if n_users else np.zeros(0, int)
    abs_period = per[:, None] + np.arange(n_steps)[None, :]
    churn[(abs_period > last - 1 - churn_censor) | ~valid] = np.nan
    if static is None:
        static = np.zeros((n_users, 0), dtype=np.float32)
    return PanelTensors(np.asarray(user_ids), per.astype(np.int64), raw, act, loss_act, prop,
                        valid, churn, static.astype(np.float32))
