"""The plumbing every batched (one process, N users in arrays) SB3 ``VecEnv`` shares.

A batched env is one object that steps all its users at once, so SB3's per-sub-env calls
(``get_attr``, ``env_method`` ...) all answer from that one object; ``env_method("action_masks")``
returns the rows of :meth:`action_masks` (what sb3-contrib's MaskablePPO asks for).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv


class BatchedVecEnv(VecEnv):
    """Base class: subclasses implement ``reset``, ``step_async``, ``step_wait``,
    ``action_masks`` and set ``self._rng`` (a ``numpy.random.Generator``)."""

    _rng: np.random.Generator

    def action_masks(self) -> np.ndarray:
        """``(num_envs, n_actions)`` bool; all allowed unless a subclass restricts them."""
        return np.ones((self.num_envs, int(self.action_space.n)), bool)

    def seed(self, seed: int | None = None) -> list[int | None]:  # type: ignore[override]
        self._rng = np.random.default_rng(seed)
        return [seed] * self.num_envs

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None,
                   **method_kwargs: Any) -> list[Any]:
        if method_name == "action_masks":
            return list(self.action_masks()[list(self._get_indices(indices))])
        return [getattr(self, method_name)(*method_args, **method_kwargs)
                for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))
