"""The behavior predictor: one interface over every model family (numpy in, numpy out).

Example:
    >>> from predictors.models import BehaviorPredictor, PredictorConfig
    >>> panel = toy_panel(n_users=40, n_periods=6, seed=0)  # doctest: +SKIP
    >>> pred = BehaviorPredictor(PredictorConfig(family="logistic", epochs=2)).fit(
    ...     panel, ["none", "email"])  # doctest: +SKIP
    >>> keys, out = pred.predict(panel)  # doctest: +SKIP
    >>> out.p_purchase.shape  # (rows, actions)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from predictors.errors import CheckpointError, ConfigError
from predictors.io import atomic_path, write_json, write_parquet
from predictors.models.action_calibration import ActionCalibration
from predictors.models.calibration import HeadCalibration, fit_calibration
from predictors.models.config import PredictorConfig, resolve_device
from predictors.models.dad import dad_rounds
from predictors.models.families import N_RAW, BehaviorNet, State, make_net
from predictors.models.rollout_calibration import RolloutCalibration
from predictors.models.sequence import PanelTensors, StaticEncoder, panel_to_tensors
from predictors.models.train import (
    TrainResult,
    ipw_weights,
    split_users,
    torch_threads,
    train_net,
)

FORMAT_VERSION = 1
MODEL_FILE = "predictor.json"
WEIGHTS_FILE = "weights.pt"
SPLIT_FILE = "split.parquet"


@dataclass(frozen=True)
class Predictions:
    """Predicted outcome distributions for every action, each array ``(n, n_actions)``.

    Attributes:
        action_names: Catalog order of the action axis.
        p_visit: P(visit in the period).
        p_purchase: P(purchase in the period) (unconditional, not given a visit).
        revenue_mu: Mean of log revenue given a purchase.
        revenue_sigma: Std of log revenue given a purchase (revenue | purchase is log-normal).
        p_unsubscribe: P(unsubscribe in the period).
        p_churn: P(the period is the user's last active one).
        activity: The observed activity of the data: ``visit``, or ``purchase`` when the
            training data had no visit events (then ``p_visit`` was never informed, and
            :meth:`sample` draws purchases directly instead of through a visit).
    """

    action_names: tuple[str, ...]
    p_visit: np.ndarray
    p_purchase: np.ndarray
    revenue_mu: np.ndarray
    revenue_sigma: np.ndarray
    p_unsubscribe: np.ndarray
    p_churn: np.ndarray
    activity: str = "visit"

    @property
    def expected_revenue(self) -> np.ndarray:
        """Unconditional expected revenue ``p_purchase * exp(mu + sigma^2 / 2)``, ``(n, A)``."""
        return self.p_purchase * np.exp(self.revenue_mu + 0.5 * self.revenue_sigma ** 2)

    @classmethod
    def from_outputs(cls, out: np.ndarray, action_names: tuple[str, ...],
                     activity: str = "visit") -> Predictions:
        """From raw network outputs ``(n, A, 6)``."""
        def sig(x: np.ndarray) -> np.ndarray:
            return 1.0 / (1.0 + np.exp(-x))
        return cls(tuple(action_names), sig(out[..., 0]), sig(out[..., 1]), out[..., 2],
                   np.exp(np.clip(out[..., 3], -5, 5)), sig(out[..., 4]), sig(out[..., 5]),
                   activity)

    @property
    def p_active(self) -> np.ndarray:
        """P(the observed activity) ``(n, A)``: ``p_visit``, or ``p_purchase`` without visits."""
        return self.p_visit if self.activity == "visit" else self.p_purchase

    def to_frame(self) -> pd.DataFrame:
        """Columns ``p_visit__A``, ``p_purchase__A``, ``expected_revenue__A``, ``p_churn__A``."""
        cols: dict[str, np.ndarray] = {}
        er = self.expected_revenue
        for j, a in enumerate(self.action_names):
            cols[f"p_visit__{a}"] = self.p_visit[:, j]
            cols[f"p_purchase__{a}"] = self.p_purchase[:, j]
            cols[f"expected_revenue__{a}"] = er[:, j]
            cols[f"p_churn__{a}"] = self.p_churn[:, j]
        return pd.DataFrame(cols)

    def sample(self, action: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw one outcome per row under ``action`` ``(n,)``.

        A purchase is drawn given a visit with probability ``p_purchase / p_visit`` (so its
        marginal stays ``p_purchase`` whenever ``p_purchase <= p_visit``); when the data had no
        visits (``activity == "purchase"``) it is drawn with probability ``p_purchase`` and no
        visit is drawn, as in the data. Revenue is drawn from the log-normal on purchase rows
        and is 0 elsewhere.

        Returns:
            ``visit``, ``purchase``, ``unsubscribe``, ``churn`` (bool ``(n,)``), ``revenue``
            (float ``(n,)``).
        """
        action = np.asarray(action)
        n = len(action)
        if self.p_visit.shape[0] != n:
            raise ValueError(f"`action` must have one entry per row ({self.p_visit.shape[0]}); "
                             f"got {n}")
        if n and (action.min() < 0 or action.max() >= len(self.action_names)):
            raise ValueError(f"`action` must be in [0, {len(self.action_names)}); got "
                             f"[{action.min()}, {action.max()}]")
        r = np.arange(n)
        pv, pp = self.p_visit[r, action], self.p_purchase[r, action]
        if self.activity == "purchase":
            visit = np.zeros(n, dtype=bool)
            rng.random(n)  # keep the draws aligned with the visit-gated case
            purchase = rng.random(n) < pp
        else:
            visit = rng.random(n) < pv
            purchase = visit & (rng.random(n) < np.minimum(1.0, pp / np.maximum(pv, 1e-12)))
        logr = self.revenue_mu[r, action] + self.revenue_sigma[r, action] * rng.standard_normal(n)
        return {"visit": visit, "purchase": purchase,
                "revenue": np.where(purchase, np.exp(logr), 0.0),
                "unsubscribe": rng.random(n) < self.p_unsubscribe[r, action],
                "churn": rng.random(n) < self.p_churn[r, action]}


class BehaviorPredictor:
    """How a user responds to each intervention, learnt from a panel.

    Public API (sklearn / SB3 style): ``fit``, ``predict``, ``save``, ``load``, plus the carried
    state for step-by-step simulation: ``initial_state``, ``step``, ``predict_from_state``.
    Learned attributes end in ``_``.

    Args:
        config: Hyperparameters (family, history, ...).
    """

    def __init__(self, config: PredictorConfig | None = None) -> None:
        self.config = config or PredictorConfig()
        self.action_names_: tuple[str, ...] = ()
        self.none_index_: int | None = None
        self.activity_ = "visit"
        self.encoder_ = StaticEncoder()
        self.net_: BehaviorNet | None = None
        self.split_: pd.DataFrame | None = None
        self.train_result_: TrainResult | None = None
        self.calibration_: HeadCalibration | None = None
        #: per-period offsets applied by the simulator (envs.rollout_calibration), or None
        self.rollout_calibration_: RolloutCalibration | None = None
        #: per-action offsets from logged propensities (envs.action_calibration), or None
        self.action_calibration_: ActionCalibration | None = None
        self.device_ = torch.device("cpu")

    # ------------------------------------------------------------------ fitting
    def fit(self, panel: pd.DataFrame, action_names: list[str] | tuple[str, ...],
            users: pd.DataFrame | None = None, none_action: str | None = "none",
            progress: bool = True) -> BehaviorPredictor:
        """Fit on a panel (split by user into train/validation/test, test left out).

        Args:
            panel: The panel (see :mod:`predictors.models.sequence`).
            action_names: Catalog action names in index order.
            users: Optional users table (``user_id`` + static features).
            none_action: Name of the no-intervention action that unknown actions mean.
            progress: Show a tqdm bar on stderr.
        """
        if not action_names:
            raise ConfigError("`action_names` must hold at least one action")
        self.action_names_ = tuple(action_names)
        self.calibration_ = self.rollout_calibration_ = self.action_calibration_ = None
        self.none_index_ = (self.action_names_.index(none_action)
                            if none_action in self.action_names_ else None)
        cfg = self.config
        self.activity_ = "visit" if (panel["visits"].to_numpy() > 0).any() else "purchase"
        data = panel_to_tensors(panel, len(action_names), self.none_index_,
                                churn_censor=cfg.churn_censor)
        split = split_users(data.n_users, cfg.val_fraction, cfg.test_fraction, cfg.seed)
        self.split_ = pd.DataFrame({"user_id": data.user_ids, "split": split.astype(str)})
        train_ids = data.user_ids[split == "train"]
        self.encoder_ = StaticEncoder.fit(
            None if users is None else users[users["user_id"].isin(train_ids)])
        data.static = self.encoder_.transform(users, data.user_ids)
        gen_state = torch.random.fork_rng(devices=[])
        with gen_state, torch_threads(cfg.num_threads):
            # Weight init draws from torch's default generator: seed it inside fork_rng, which
            # restores the caller's global RNG state on exit (no global side effect).
            torch.manual_seed(cfg.seed + 7919 * cfg.member)
            self.net_ = make_net(cfg, len(action_names), self.encoder_.n_features)
            val = data.subset(np.flatnonzero(split == "val"))
            train = data.subset(np.flatnonzero(split == "train"))
            if self.net_.closed_form:  # e.g. markov: counted, not trained by gradient
                if cfg.dad:
                    raise ConfigError(f"`dad` needs a family trained by gradient descent; "
                                      f"{cfg.family!r} is fitted in closed form")
                self.train_result_ = self.net_.fit_closed_form(train, val, cfg, progress,
                                                                 self.none_index_)
            else:
                self.train_result_ = train_net(self.net_, train, val, cfg, progress=progress)
                self.train_result_.history.extend(
                    dad_rounds(self.net_, train, val, cfg, self.activity_, progress))
        self.device_ = next(iter(self.net_.state_dict().values())).device
        return self

    def _require_fitted(self) -> BehaviorNet:
        if self.net_ is None:
            raise ConfigError("this predictor is not fitted; call fit() or load() first")
        return self.net_

    # ------------------------------------------------------------------ batch prediction
    def tensors(self, panel: pd.DataFrame, users: pd.DataFrame | None = None) -> PanelTensors:
        """The panel as :class:`PanelTensors` with this predictor's encoders."""
        self._require_fitted()
        data = panel_to_tensors(panel, len(self.action_names_), self.none_index_,
                                churn_censor=self.config.churn_censor)
        data.static = self.encoder_.transform(users, data.user_ids)
        return data

    def predict_tensors(self, data: PanelTensors, batch_size: int = 8192) -> Predictions:
        """Predictions for every valid step of ``data`` (in :meth:`PanelTensors.keys` order)."""
        net = self._require_fitted()
        steps = max(1, data.raw.shape[1])
        upb = max(1, batch_size // steps)
        chunks = []
        with torch.no_grad(), torch_threads(self.config.num_threads):
            for s in range(0, data.n_users, upb):
                sl = slice(s, s + upb)
                out = net(torch.as_tensor(data.raw[sl]).to(self.device_),
                          torch.as_tensor(data.action[sl]).to(self.device_),
                          torch.as_tensor(data.static[sl]).to(self.device_))
                chunks.append(out[torch.as_tensor(data.valid[sl]).to(self.device_)].cpu().numpy())
        out = np.concatenate(chunks) if chunks else np.zeros((0, len(self.action_names_), 6))
        return Predictions.from_outputs(self._calibrated(out), self.action_names_,
                                        self.activity_)

    def _calibrated(self, out: np.ndarray) -> np.ndarray:
        out = out.astype(np.float64)
        return out if self.calibration_ is None else self.calibration_.apply(out)

    def calibrate(self, panel: pd.DataFrame, users: pd.DataFrame | None = None,
                  method: str = "temperature", weighted: bool = False,
                  clip: float | None = None) -> BehaviorPredictor:
        """Fit per-head, per-action calibration on the validation users of the fit's split.

        Args:
            panel: The panel the predictor was fitted on (its validation users are used).
            users: Users table of the fit.
            method: ``temperature`` or ``isotonic`` (see :mod:`predictors.models.calibration`).
            weighted: Weigh rows by the inverse propensity of their logged action.
            clip: Largest inverse-propensity weight (default ``config.ipw_clip``).

        Raises:
            ConfigError: The predictor has no split, or its validation users are not in
                ``panel``.
        """
        self._require_fitted()
        if self.split_ is None:
            raise ConfigError("calibration needs the fit's user split (split.parquet)")
        # a rollout calibration was fitted on top of the old heads: it no longer applies
        self.calibration_ = self.rollout_calibration_ = self.action_calibration_ = None
        data = self.tensors(panel, users)
        split = self.split_.set_index("user_id")["split"].reindex(data.user_ids).to_numpy()
        val = data.subset(np.flatnonzero(split == "val"))
        if val.n_users == 0:
            raise ConfigError("calibration: none of the fit's validation users is in `panel`")
        pred = self.predict_tensors(val)
        v = val.valid
        act = val.loss_action[v].astype(np.int64)
        rows = np.arange(len(act))
        a = np.clip(act, 0, None)
        raw = val.raw[v]
        p = {"visit": pred.p_visit[rows, a], "purchase": pred.p_purchase[rows, a],
             "unsubscribe": pred.p_unsubscribe[rows, a], "churn": pred.p_churn[rows, a]}
        y = {"visit": (raw[:, 0] > 0).astype(float), "purchase": (raw[:, 3] > 0).astype(float),
             "unsubscribe": (raw[:, 5] > 0).astype(float),
             "churn": val.churn[v].astype(float)}
        known = act >= 0
        for k in y:
            y[k] = np.where(known, y[k], np.nan)
        has_rev = known & (raw[:, 3] > 0) & (raw[:, 6] > 0)
        resid = np.log(raw[has_rev, 6]) - pred.revenue_mu[rows[has_rev], a[has_rev]]
        w = ipw_weights(val, self.config.ipw_clip if clip is None else clip)[v] if weighted \
            else None
        self.calibration_ = fit_calibration(method, p, y, act, len(self.action_names_),
                                            weight=w, log_revenue=(resid, act[has_rev]))
        return self

    def predict(self, panel: pd.DataFrame,
                users: pd.DataFrame | None = None) -> tuple[pd.DataFrame, Predictions]:
        """Predict every panel row's outcomes for every action, from the history before it.

        Returns:
            ``keys`` (``user_id``, ``period`` per row) and the :class:`Predictions` ``(n, A)``.
        """
        data = self.tensors(panel, users)
        return data.keys(), self.predict_tensors(data)

    # ------------------------------------------------------------------ carried state
    def initial_state(self, n: int, static: np.ndarray | None = None) -> State:
        """State of ``n`` users before their first period.

        Args:
            n: Batch size.
            static: ``(n, S)`` encoded static features (``encoder_.transform``); zeros if None.
        """
        net = self._require_fitted()
        s = np.zeros((n, self.encoder_.n_features), np.float32) if static is None else static
        if s.shape != (n, self.encoder_.n_features):
            raise ValueError(f"`static` must have shape {(n, self.encoder_.n_features)}; "
                             f"got {s.shape}")
        with torch.no_grad():
            return net.init_state(torch.as_tensor(s, dtype=torch.float32).to(self.device_))

    def step(self, state: State, raw: np.ndarray, action: np.ndarray) -> State:
        """Advance ``state`` by one observed period.

        Args:
            state: From :meth:`initial_state` or a previous :meth:`step`.
            raw: ``(n, 7)`` visits, views, carts, purchases, favs, unsubscribes, revenue.
            action: ``(n,)`` action index sent in that period; -1 (none logged) is read as
                the catalog's ``none``, as in training.
        """
        net = self._require_fitted()
        action = np.asarray(action)
        if self.none_index_ is not None and len(action) and action.min() < 0:
            action = np.where(action < 0, self.none_index_, action)
        if raw.ndim != 2 or raw.shape[1] != N_RAW:
            raise ValueError(f"`raw` must have shape (n, {N_RAW}); got {raw.shape}")
        with torch.no_grad():
            return net.step(state, torch.as_tensor(raw, dtype=torch.float32).to(self.device_),
                            torch.as_tensor(action, dtype=torch.int64).to(self.device_))

    def predict_from_state(self, state: State) -> Predictions:
        """Predictions ``(n, A)`` for the coming period of every user in ``state``."""
        net = self._require_fitted()
        with torch.no_grad():
            out = net.readout(state).cpu().numpy()
        return Predictions.from_outputs(self._calibrated(out), self.action_names_,
                                        self.activity_)

    # ------------------------------------------------------------------ persistence
    def to_cpu(self) -> BehaviorPredictor:
        """Move the network to the CPU (inference in the simulator defaults to CPU)."""
        self._require_fitted().to("cpu")
        self.device_ = torch.device("cpu")
        return self

    def save(self, folder: str | Path) -> Path:
        """Write ``predictor.json``, ``weights.pt`` (and ``split.parquet``) atomically."""
        import predictors

        net = self._require_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION, "nudgegym_version": predictors.__version__,
            "config": self.config.to_dict(), "action_names": list(self.action_names_),
            "none_index": self.none_index_, "activity": self.activity_,
            "static_encoder": self.encoder_.to_dict(),
            "calibration": None if self.calibration_ is None else self.calibration_.to_dict(),
            "rollout_calibration": (None if self.rollout_calibration_ is None
                                    else self.rollout_calibration_.to_dict()),
            "action_calibration": (None if self.action_calibration_ is None
                                   else self.action_calibration_.to_dict()),
        }
        sd = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            torch.save({"format_version": FORMAT_VERSION, "family": self.config.family,
                        "state_dict": sd}, tmp)
        if self.split_ is not None:
            write_parquet(folder / SPLIT_FILE, self.split_)
        write_json(folder / MODEL_FILE, meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> BehaviorPredictor:
        """Rebuild a saved predictor; any damaged or mismatched file raises CheckpointError."""
        import predictors

        folder = Path(folder)
        mpath, wpath = folder / MODEL_FILE, folder / WEIGHTS_FILE
        for p in (mpath, wpath):
            if not p.is_file():
                raise CheckpointError(f"{p}: missing (not a predictor folder?)")
        try:
            meta = json.loads(mpath.read_text())
            cfg = PredictorConfig.from_dict(meta["config"])
            names = tuple(meta["action_names"])
            encoder = StaticEncoder.from_dict(meta["static_encoder"])
            none_index = meta["none_index"]
            calibration = (HeadCalibration.from_dict(meta["calibration"])
                           if meta.get("calibration") else None)
            rollout = meta.get("rollout_calibration")
            rollout = None if rollout is None else RolloutCalibration.from_dict(rollout)
            per_action = meta.get("action_calibration")
            per_action = None if per_action is None else ActionCalibration.from_dict(per_action)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{mpath}: corrupted or incompatible ({e})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{mpath}: format_version {meta.get('format_version')!r}, "
                                  f"this version reads {FORMAT_VERSION}")
        if meta.get("nudgegym_version") != predictors.__version__:
            warnings.warn(f"{mpath} was written by nudgegym {meta.get('nudgegym_version')}, "
                          f"this is {predictors.__version__}", stacklevel=2)
        try:
            blob = torch.load(wpath, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated / not a torch file
            raise CheckpointError(f"{wpath}: cannot be read ({type(e).__name__}: {e})") from None
        if not isinstance(blob, dict) or "state_dict" not in blob:
            raise CheckpointError(f"{wpath}: not a nudgegym predictor checkpoint")
        if blob.get("family") != cfg.family:
            raise CheckpointError(f"{wpath}: holds a {blob.get('family')!r} model but "
                                  f"{MODEL_FILE} says {cfg.family!r}")
        self = cls(cfg)
        self.action_names_, self.encoder_, self.none_index_ = names, encoder, none_index
        self.activity_ = str(meta.get("activity", "visit"))
        self.calibration_, self.rollout_calibration_ = calibration, rollout
        self.action_calibration_ = per_action
        net = make_net(cfg, len(names), encoder.n_features)
        try:
            net.load_state_dict(blob["state_dict"], strict=True)
        except (RuntimeError, KeyError) as e:
            first = str(e).strip().splitlines()
            raise CheckpointError(f"{wpath}: weights do not match {MODEL_FILE} "
                                  f"({' '.join(first[:3])[:300]})") from None
        self.device_ = resolve_device(device)
        self.net_ = net.to(self.device_).eval()
        if (folder / SPLIT_FILE).is_file():
            self.split_ = pd.read_parquet(folder / SPLIT_FILE)
        return self
