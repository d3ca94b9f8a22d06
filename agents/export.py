"""Export a trained SB3 policy to ONNX or TorchScript with a JSON manifest.

The exported graph takes ``obs`` ``(n, d)`` float32 and ``action_mask`` ``(n, A)`` float32
(1 = allowed) and returns ``probs`` ``(n, A)`` (the policy's action probabilities, masked
actions at 0) and ``action`` ``(n,)`` int64 (the greedy action). Observation normalisation, when
the policy was trained with one, is inside the graph. For DQN the probabilities are the
epsilon-greedy ones with the epsilon written in the manifest (``epsilon = 0`` gives the greedy
policy as a one-hot distribution).

``manifest.json`` lists the observation features in order with their dtype, the actions with
their costs, what the outputs mean, the masks, versions (nudgegym, torch, SB3, ONNX opset), a
fingerprint of the training data and the model file's sha256. :mod:`agents.serving` scores with
onnxruntime alone and refuses a model whose checksum does not match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from predictors import DatasetSpec
from predictors.io import atomic_path, versions, write_json

OPSET = 17
MANIFEST_VERSION = 1
_NEG = -1e9


@dataclass(frozen=True)
class ObsNormalization:
    """``clip((obs - mean) / sqrt(var + eps), -clip, clip)``, as SB3's VecNormalize does."""

    mean: np.ndarray
    var: np.ndarray
    clip: float = 10.0
    eps: float = 1e-8


class PolicyGraph(nn.Module):
    """A CPU copy of an SB3 policy as one graph: obs (+ mask) -> (probs, greedy action).

    Args:
        policy: ``model.policy`` of PPO, MaskablePPO (actor-critic) or DQN.
        kind: ``actor_critic`` or ``q``.
        epsilon: DQN exploration rate of the exported probabilities.
        normalization: Observation normalisation applied before the policy.
    """

    def __init__(self, policy: nn.Module, kind: str, epsilon: float = 0.0,
                 normalization: ObsNormalization | None = None) -> None:
        super().__init__()
        if kind not in ("actor_critic", "q"):
            raise ValueError(f"`kind` must be 'actor_critic' or 'q'; got {kind!r}")
        self.policy, self.kind, self.epsilon = policy, kind, float(epsilon)
        self.normalize = normalization is not None
        n = normalization
        self.register_buffer("mean", torch.as_tensor(n.mean if n else [0.0], dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.sqrt(n.var + n.eps) if n else [1.0],
                                                    dtype=torch.float32))
        self.clip = float(n.clip) if n else 0.0

    def forward(self, obs: torch.Tensor, action_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = obs
        if self.normalize:
            x = torch.clamp((x - self.mean) / self.std, -self.clip, self.clip)
        allowed = action_mask > 0.5
        if self.kind == "actor_critic":
            feats = self.policy.pi_features_extractor(x)
            logits = self.policy.action_net(self.policy.mlp_extractor.forward_actor(feats))
            logits = logits.masked_fill(~allowed, _NEG)
            probs = torch.softmax(logits, dim=-1)
            action = torch.argmax(logits, dim=-1)
        else:
            q = self.policy.q_net(x).masked_fill(~allowed, _NEG)
            action = torch.argmax(q, dim=-1)
            onehot = nn.functional.one_hot(action, q.shape[-1]).to(q.dtype)
            uniform = allowed.to(q.dtype) / allowed.to(q.dtype).sum(dim=-1, keepdim=True)
            probs = (1.0 - self.epsilon) * onehot + self.epsilon * uniform
        return probs, action


def policy_kind(model: Any) -> str:
    """``q`` for DQN-like models (a ``q_net``), else ``actor_critic``."""
    return "q" if hasattr(model.policy, "q_net") else "actor_critic"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def data_fingerprint(data: str | Path) -> dict[str, str]:
    """sha256 of each file of a dataset folder's contract (not ``truth/``)."""
    folder = Path(data)
    out = {}
    for name in ("dataset.json", "events.parquet", "events.csv", "interventions.parquet",
                 "interventions.csv", "users.parquet", "users.csv"):
        p = folder / name
        if p.is_file():
            out[name] = file_sha256(p)
    return out


def export_policy(model: Any, out: str | Path, *, observation_names: list[str],
                  spec: DatasetSpec, fmt: str = "onnx", epsilon: float | None = None,
                  normalization: ObsNormalization | None = None, masks: dict | None = None,
                  data: str | Path | None = None, algo: str | None = None,
                  static_encoder: dict | None = None) -> Path:
    """Write the model file and ``manifest.json`` into ``out`` (each atomically).

    Args:
        model: A trained SB3 model (PPO, MaskablePPO, DQN).
        out: Export folder.
        observation_names: The observation's feature names in order.
        spec: Dataset spec (action names and costs).
        fmt: ``onnx`` or ``torchscript``.
        epsilon: DQN exploration rate of the exported probabilities (default: the model's
            final exploration rate).
        normalization: Observation normalisation to put inside the graph.
        masks: Frequency caps the policy was trained with (written to the manifest).
        data: Training dataset folder (fingerprinted into the manifest).
        algo: Algorithm name for the manifest.
        static_encoder: How the ``static:...`` features encode the users table (the
            predictor's ``StaticEncoder.to_dict()``), so a serving job can build them from the
            raw columns (:func:`agents.serving.add_static_features`).
    """
    if fmt not in ("onnx", "torchscript"):
        raise ValueError(f"`fmt` must be 'onnx' or 'torchscript'; got {fmt!r}")
    kind = policy_kind(model)
    if kind == "q" and epsilon is None:
        epsilon = float(getattr(model, "exploration_final_eps", 0.0))
    eps = float(epsilon or 0.0) if kind == "q" else 0.0
    d, n_actions = len(observation_names), spec.n_actions
    space = model.observation_space.shape
    if space != (d,):
        raise ValueError(f"the model's observation space {space} does not match "
                         f"{d} observation names")
    # Export always starts from a CPU copy, rebuilt from the constructor parameters and the
    # weights (as SB3's own policy save/load does).
    src = model.policy
    policy = type(src)(**src._get_constructor_parameters())
    policy.load_state_dict({k: v.detach().cpu() for k, v in src.state_dict().items()})
    policy = policy.to("cpu").eval()
    graph = PolicyGraph(policy, kind, eps, normalization).eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    obs = torch.zeros(2, d)
    mask = torch.ones(2, n_actions)
    name = "policy.onnx" if fmt == "onnx" else "policy.pt"
    with atomic_path(out / name) as tmp, torch.no_grad():
        if fmt == "onnx":
            torch.onnx.export(graph, (obs, mask), str(tmp), input_names=["obs", "action_mask"],
                              output_names=["probs", "action"], opset_version=OPSET,
                              dynamic_axes={k: {0: "n"} for k in
                                            ("obs", "action_mask", "probs", "action")},
                              dynamo=False)
        else:
            torch.jit.save(torch.jit.trace(graph, (obs, mask)), str(tmp))
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "format": fmt,
        "model_file": name,
        "sha256": file_sha256(out / name),
        "algo": algo or type(model).__name__,
        "policy_kind": kind,
        "inputs": {
            "obs": {"dtype": "float32", "shape": [None, d], "features": list(observation_names),
                    "normalization": None if normalization is None else {
                        "mean": np.asarray(normalization.mean).tolist(),
                        "var": np.asarray(normalization.var).tolist(),
                        "clip": normalization.clip, "eps": normalization.eps,
                        "inside_graph": True},
                    "static_encoder": static_encoder},
            "action_mask": {"dtype": "float32", "shape": [None, n_actions],
                            "meaning": "1 = action allowed, 0 = refused (frequency caps); "
                                       "all ones when the policy uses no masks"},
        },
        "outputs": {
            "probs": {"dtype": "float32", "shape": [None, n_actions],
                      "meaning": "probability of each action (masked actions 0)"
                      + (f"; epsilon-greedy with epsilon={eps}" if kind == "q" else "")},
            "action": {"dtype": "int64", "shape": [None],
                       "meaning": "greedy action index (argmax of "
                                  + ("Q-values)" if kind == "q" else "the policy's logits)")},
        },
        "epsilon": eps if kind == "q" else None,
        "actions": [{"index": i, **a.__dict__} for i, a in enumerate(spec.actions)],
        "currency": spec.currency,
        "masks": masks or {"used": False},
        "versions": {**versions(), "onnx_opset": OPSET if fmt == "onnx" else None},
        "data_fingerprint": data_fingerprint(data) if data is not None else None,
    }
    write_json(out / "manifest.json", manifest)
    return out


def read_manifest(folder: str | Path) -> dict:
    """The manifest of an export folder (JSON; nothing is unpickled)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not an export folder (no manifest.json)")
    return json.loads(path.read_text())
