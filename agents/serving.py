"""Batch decisions from an exported policy with onnxruntime alone (no torch, no SB3).

This module imports only numpy, pandas and onnxruntime, so a serving job does not need the
training stack. The model file's sha256 must match its manifest, and the input table must carry
every observation feature of the manifest as a finite number.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from predictors.errors import CheckpointError, DataValidationError, Problem


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class ExportedPolicy:
    """An ONNX export folder loaded for scoring (checksum verified).

    Args:
        folder: Folder written by ``nudgegym export --format onnx``.
    """

    def __init__(self, folder: str | Path) -> None:
        import onnxruntime as ort

        folder = Path(folder)
        path = folder / "manifest.json"
        if not path.is_file():
            raise CheckpointError(f"{path}: not an export folder (no manifest.json)")
        try:
            self.manifest = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        if self.manifest.get("format") != "onnx":
            raise CheckpointError(f"{path}: scoring needs an ONNX export; this one is "
                                  f"{self.manifest.get('format')!r}")
        model = folder / self.manifest["model_file"]
        if not model.is_file():
            raise CheckpointError(f"{model}: the model file named by the manifest is missing")
        digest = _sha256(model)
        if digest != self.manifest["sha256"]:
            raise CheckpointError(f"{model}: sha256 {digest[:12]}... does not match the "
                                  f"manifest's {self.manifest['sha256'][:12]}...; refusing to "
                                  "load a modified or corrupted model")
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.features: list[str] = self.manifest["inputs"]["obs"]["features"]
        self.action_names: list[str] = [a["name"] for a in self.manifest["actions"]]
        #: How the ``static:...`` features encode the users table (``None``: none are read).
        self.static_encoder: dict | None = self.manifest["inputs"]["obs"].get("static_encoder")

    @property
    def n_actions(self) -> int:
        """Number of actions."""
        return len(self.action_names)

    def action_probabilities(self, obs: np.ndarray,
                             action_mask: np.ndarray | None = None) -> np.ndarray:
        """``(n, n_actions)`` probabilities (the common policy interface)."""
        return self._run(obs, action_mask)[0]

    def act(self, obs: np.ndarray, rng: np.random.Generator,
            action_mask: np.ndarray | None = None) -> np.ndarray:
        """One sampled action per row (inverse CDF, one uniform per row)."""
        p = self.action_probabilities(obs, action_mask)
        u = rng.random(len(p))[:, None]
        return np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), self.n_actions - 1)

    def greedy(self, obs: np.ndarray, action_mask: np.ndarray | None = None) -> np.ndarray:
        """The greedy action of each row."""
        return self._run(obs, action_mask)[1]

    def _run(self, obs: np.ndarray, action_mask: np.ndarray | None) -> tuple[np.ndarray, ...]:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != len(self.features):
            raise ValueError(f"`obs` must have shape (n, {len(self.features)}); got {obs.shape}")
        mask = (np.ones((len(obs), self.n_actions), np.float32) if action_mask is None
                else np.asarray(action_mask, dtype=np.float32))
        probs, action = self.session.run(None, {"obs": obs, "action_mask": mask})
        return probs.astype(np.float64), action.astype(np.int64)

    def observations(self, table: pd.DataFrame, source: str = "input") -> np.ndarray:
        """The manifest's features from a table, validated (missing, non-numeric, NaN)."""
        problems = []
        missing = [c for c in self.features if c not in table.columns]
        if missing:
            problems.append(Problem(source, None, missing[0], "every observation feature of "
                                    "the manifest", f"{len(missing)} missing: {missing[:5]}"))
            raise DataValidationError(problems)
        cols = []
        for c in self.features:
            v = pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(v)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                problems.append(Problem(source, i + 1, c, "a finite number",
                                        repr(table[c].iloc[i]), count=int(bad.sum())))
            cols.append(v)
        if problems:
            raise DataValidationError(problems)
        return np.stack(cols, axis=1).astype(np.float32)


def add_static_features(table: pd.DataFrame, encoder: dict,
                        source: str = "input") -> pd.DataFrame:
    """``table`` with the ``static:...`` columns a manifest's ``static_encoder`` builds from
    the users table's raw columns (numbers standardised, categories one-hot; missing values
    0), as in training. Columns already present are kept.

    Raises:
        DataValidationError: A raw column the encoding needs is missing.
    """
    out = table.copy()
    new = {}
    for col, (mean, std) in encoder.get("numeric", {}).items():
        name = f"static:{col}"
        if name in out.columns:
            continue
        if col not in out.columns:
            raise DataValidationError([Problem(source, None, col, "the users-table column "
                                               "the policy's static features encode",
                                               "no such column")])
        s = out[col]
        if pd.api.types.is_datetime64_any_dtype(s):  # dates as days since 1970-01-01
            epoch = pd.Timestamp("1970-01-01", tz=getattr(s.dt, "tz", None))
            s = (s - epoch).dt.total_seconds() / 86400.0
        v = (pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64) - mean) / std
        new[name] = np.nan_to_num(v, nan=0.0)
    for col, cats in encoder.get("categorical", {}).items():
        names = [f"static:{col}={c}" for c in cats]
        if all(n in out.columns for n in names):
            continue
        if col not in out.columns:
            raise DataValidationError([Problem(source, None, col, "the users-table column "
                                               "the policy's static features encode",
                                               "no such column")])
        s = out[col].astype("string")
        for c, n in zip(cats, names, strict=True):
            new[n] = (s == c).fillna(False).to_numpy(dtype=np.float64)
    return pd.concat([out, pd.DataFrame(new, index=out.index)], axis=1) if new else out


def score_table(policy: ExportedPolicy, table: pd.DataFrame, *, mode: str = "sample",
                seed: int = 0, source: str = "input") -> pd.DataFrame:
    """Decisions for every row: action, its probability (the pscore for later OPE), all probs.

    Args:
        policy: The loaded export.
        table: One row per user with the manifest's feature columns (and optionally
            ``user_id`` and per-action mask columns ``mask__<action>``).
        mode: ``sample`` (draw from the policy's probabilities, seeded) or ``greedy``.
        seed: Seed of the draws.
        source: Name of the input in error messages.
    """
    if mode not in ("sample", "greedy"):
        raise ValueError(f"`mode` must be 'sample' or 'greedy'; got {mode!r}")
    obs = policy.observations(table, source)
    mask_cols = [f"mask__{a}" for a in policy.action_names]
    mask = (table[mask_cols].to_numpy(dtype=np.float32)
            if all(c in table.columns for c in mask_cols) else None)
    probs, greedy = policy._run(obs, mask)
    if mode == "greedy":
        action = greedy
    else:
        action = policy.act(obs, np.random.default_rng(seed), mask)
    out = pd.DataFrame(index=table.index)
    if "user_id" in table.columns:
        out["user_id"] = table["user_id"].to_numpy()
    names = np.array(policy.action_names)
    out["action"] = names[action]
    out["action_index"] = action
    # The logged propensity: 1 for a greedy (deterministic) decision, else the drawn action's.
    out["propensity"] = (np.ones(len(action)) if mode == "greedy"
                         else probs[np.arange(len(action)), action])
    for j, a in enumerate(policy.action_names):
        out[f"prob__{a}"] = probs[:, j]
    return out.reset_index(drop=True)
