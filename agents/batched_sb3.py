"""SB3 on a batched env of thousands of users: two per-user Python loops made vectorised.

Measured on the learned shop (:class:`envs.shop_env.ShopVecEnv`, 1024+ users per step):

* PPO and MaskablePPO bootstrap every truncated episode with its own batch-of-1 value forward
  (``collect_rollouts``); when a cohort of users reaches the horizon together that is thousands
  of forwards in one step. :class:`TrainingRewardWrapper` does the bootstrap itself, with ONE
  batched value forward over all truncated users of the step, adds ``gamma * V(terminal_obs)``
  to their rewards and clears their ``TimeLimit.truncated`` flag so SB3 does not add it again.
  It also scales rewards for the learner (``reward_scale``): money per period is O(10), which
  makes value losses dominate the clipped joint gradient.
* DQN draws exploratory actions in a Python list (one ``action_space.sample()`` per env) and
  with probability epsilon for the whole batch at once; :class:`VectorisedDQN` draws them with
  one numpy call, independently per env (per-env epsilon-greedy, the textbook rule), from a
  generator seeded by the model's seed (no global RNG).

Place :class:`TrainingRewardWrapper` outside :class:`~stable_baselines3.common.vec_env.VecMonitor`
so logged episode returns stay in money.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

__all__ = ["ALGORITHMS", "TrainingRewardWrapper", "VectorisedDQN"]


class TrainingRewardWrapper(VecEnvWrapper):
    """Scale rewards for the learner and bootstrap truncated episodes in one batched forward.

    Args:
        venv: The (monitored) batched env.
        reward_scale: Rewards are multiplied by this before the learner sees them.
        gamma: Discount of the bootstrap ``r + gamma * V(s_T)`` (the algorithm's).

    Call :meth:`attach` with the algorithm's policy before learning; without it truncated
    episodes are left to SB3's own (per-env) bootstrap.
    """

    def __init__(self, venv: VecEnv, reward_scale: float = 1.0, gamma: float = 0.99) -> None:
        super().__init__(venv)
        if not reward_scale > 0:
            raise ValueError(f"`reward_scale` must be > 0; got {reward_scale!r}")
        self.reward_scale, self.gamma = float(reward_scale), float(gamma)
        self._policy: Any = None

    def attach(self, policy: Any, gamma: float) -> None:
        """Use ``policy.predict_values`` (an SB3 actor-critic policy) for the bootstrap."""
        self._policy, self.gamma = policy, float(gamma)

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        rewards = rewards.astype(np.float32) * self.reward_scale
        if self._policy is not None and dones.any():
            rows = [i for i in np.flatnonzero(dones)
                    if infos[i].get("TimeLimit.truncated", False)
                    and infos[i].get("terminal_observation") is not None]
            if rows:
                terminal = np.stack([infos[i]["terminal_observation"] for i in rows])
                with torch.no_grad():
                    t_obs = self._policy.obs_to_tensor(terminal)[0]
                    values = self._policy.predict_values(t_obs).cpu().numpy().reshape(-1)
                rewards[rows] += self.gamma * values
                for i in rows:  # bootstrapped here: SB3 must not add it again
                    infos[i]["TimeLimit.truncated"] = False
                    infos[i]["bootstrapped"] = True
        return obs, rewards, dones, infos

    def action_masks(self) -> np.ndarray:
        """The wrapped env's masks (for MaskablePPO)."""
        return np.stack(self.venv.env_method("action_masks"))


def large_margin_loss(q: torch.Tensor, teacher_action: torch.Tensor,
                      margin: float) -> torch.Tensor:
    """DQfD's large-margin term, ``mean(max_a [Q(s, a) + margin * (a != a_T)] - Q(s, a_T))``:
    zero once the teacher's action ``a_T`` leads every other action by ``margin``."""
    import torch.nn.functional as F

    other = margin * (1 - F.one_hot(teacher_action, q.shape[1]).to(q.dtype))
    return ((q + other).max(dim=1).values - q.gather(1, teacher_action[:, None]).squeeze(1)).mean()


class VectorisedDQN(DQN):
    """DQN whose exploration draws all envs' random actions in one numpy call (per-env eps).

    With :meth:`keep_teacher_margin` (set by the DQN warm start) every training call also takes
    one large-margin step on a replay sample (DQfD style): the teacher's action is pushed at
    least ``margin`` above the others, so TD updates move the greedy action off the teacher's
    only where their evidence exceeds the margin.
    """

    def _setup_model(self) -> None:
        super()._setup_model()
        self._explore_rng = np.random.default_rng(self.seed)
        self._teacher: Any = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_teacher"]

    def keep_teacher_margin(self, teacher: Any, margin: float, weight: float) -> None:
        """Add the large-margin term of ``teacher`` (``act(obs, rng)``) to training."""
        self._teacher, self._margin, self._margin_weight = teacher, float(margin), float(weight)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        super().train(gradient_steps, batch_size)
        if self._teacher is None or self._margin_weight <= 0:
            return
        data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
        obs = data.observations
        teach = self._teacher.act(obs.cpu().numpy(), self._explore_rng)
        a = torch.as_tensor(np.asarray(teach), device=obs.device, dtype=torch.long)
        loss = self._margin_weight * large_margin_loss(self.q_net(obs), a, self._margin)
        self.policy.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()
        self.logger.record("train/margin_loss", float(loss.detach()))

    def _random_actions(self, n: int) -> np.ndarray:
        return self._explore_rng.integers(self.action_space.n, size=n)

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        action, state = self.policy.predict(observation, state, episode_start, deterministic)
        if deterministic or self.exploration_rate <= 0:
            return action, state
        action = np.array(action)
        if action.ndim == 0:
            if self._explore_rng.random() < self.exploration_rate:
                action = np.array(self._random_actions(1)[0])
            return action, state
        explore = self._explore_rng.random(len(action)) < self.exploration_rate
        action[explore] = self._random_actions(int(explore.sum()))
        return action, state

    def _sample_action(self, learning_starts: int, action_noise: Any = None,
                       n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts:
            action = self._random_actions(n_envs)
        else:
            action, _ = self.predict(self._last_obs, deterministic=False)
        return action, action


#: CLI algorithm name -> (training class, loading class).
ALGORITHMS: dict[str, type] = {"ppo": PPO, "maskable-ppo": MaskablePPO, "dqn": VectorisedDQN}
