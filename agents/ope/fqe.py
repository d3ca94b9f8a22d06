"""Fitted-Q evaluation (FQE) in torch: the target policy's Q-function from logged trajectories.

FQE (Le, Voloshin & Yue, "Batch policy learning under constraints", ICML 2019) repeats a
regression: starting from ``Q_0 = 0``, fit ``Q_{k+1}(s_t, a_t)`` to
``r_t + gamma * sum_a pi(a | s_{t+1}) Q_k(s_{t+1}, a)`` (just ``r_t`` at a trajectory's last
step). After ``horizon`` iterations on finite-horizon data, ``Q`` is the target policy's value
of taking ``a`` in ``s`` and following ``pi`` after. With ``time_feature`` the network also
sees ``t / max_t``, since finite-horizon values depend on the time left.

The network is an MLP ``obs -> (n_actions,)``; numpy goes in and out, torch stays inside. All
randomness (initial weights, minibatch order) comes from a ``torch.Generator`` seeded by the
config, never from the global RNG.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from agents.ope.data import LoggedData
from agents.ope.reward_model import make_folds
from predictors import check_int, check_number

__all__ = ["FQEConfig", "FittedQ", "cross_fit_q", "fit_fqe"]


@dataclass(frozen=True)
class FQEConfig:
    """Hyperparameters of fitted-Q evaluation.

    Attributes:
        hidden_sizes: Widths of the MLP's hidden layers.
        n_iterations: Bellman iterations; ``None`` = the longest trajectory's length.
        n_steps: Adam steps per iteration (warm-started from the previous iteration's net);
            the step size decays linearly to a tenth within each iteration.
        batch_size: Minibatch size (rows drawn with replacement).
        learning_rate: Adam step size at the start of each iteration.
        time_feature: Append ``time_step / max_time_step`` to the observations.
        seed: Seed of the initial weights and minibatch order.
        device: Torch device (``cpu`` or ``cuda[:n]``).
        num_threads: Torch CPU threads while fitting (the previous setting is restored after);
            small networks train fastest on one, and extra threads spin on a busy machine.
            ``None`` keeps torch's setting.
    """

    hidden_sizes: tuple[int, ...] = (64, 64)
    n_iterations: int | None = None
    n_steps: int = 300
    batch_size: int = 1024
    learning_rate: float = 3e-3
    time_feature: bool = True
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        check_int(self, "num_threads", "n_iterations", ge=1, optional=True)
        if any(int(h) < 1 for h in self.hidden_sizes):
            raise ValueError(f"`hidden_sizes` must be positive; got {self.hidden_sizes!r}")
        check_int(self, "n_steps", "batch_size", ge=1)
        check_number(self, "learning_rate", gt=0)


class FittedQ:
    """A fitted Q-function: ``predict(obs, time_step) -> (n, n_actions)``."""

    def __init__(self, net: nn.Module, mean: np.ndarray, scale: np.ndarray,
                 reward_scale: float, max_time: int, config: FQEConfig) -> None:
        self.net_ = net
        self.mean_, self.scale_ = mean, scale
        self.reward_scale_ = reward_scale
        self.max_time_ = max_time
        self.config = config

    def features(self, obs: np.ndarray | None, time_step: np.ndarray) -> np.ndarray:
        """Standardised network input ``(n, d)``."""
        x = _raw_features(obs, time_step, self.max_time_, self.config.time_feature)
        return ((x - self.mean_) / self.scale_).astype(np.float32)

    def predict(self, obs: np.ndarray | None, time_step: np.ndarray) -> np.ndarray:
        """Q-values of every action, ``(n, n_actions)``, in reward units."""
        return self._predict(self.features(obs, time_step))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        device = next(self.net_.parameters()).device
        with torch.no_grad(), _torch_threads(self.config.num_threads):
            out = self.net_(torch.from_numpy(x).to(device)).cpu().numpy()
        return out.astype(np.float64) * self.reward_scale_


def _raw_features(
    obs: np.ndarray | None, time_step: np.ndarray, max_time: int, time_feature: bool
) -> np.ndarray:
    n = len(time_step)
    x = np.zeros((n, 0)) if obs is None else np.asarray(obs, dtype=np.float64).reshape(n, -1)
    if time_feature:
        x = np.hstack([x, (time_step / max(max_time, 1))[:, None]])
    return x


def _make_net(n_in: int, n_out: int, hidden: tuple[int, ...], gen: torch.Generator) -> nn.Module:
    layers: list[nn.Module] = []
    sizes = [n_in, *[int(h) for h in hidden]]
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], n_out))
    net = nn.Sequential(*layers)
    for m in net:
        if isinstance(m, nn.Linear):
            bound = 1.0 / np.sqrt(max(m.in_features, 1))
            nn.init.uniform_(m.weight, -bound, bound, generator=gen)
            nn.init.uniform_(m.bias, -bound, bound, generator=gen)
    return net


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit_fqe(
    config: FQEConfig,
    data: LoggedData,
    action_dist: np.ndarray,
    gamma: float,
    rows: np.ndarray | None = None,
) -> FittedQ:
    """Fit the target policy's Q-function on the trajectories of ``data`` (or its ``rows``).

    Args:
        config: Hyperparameters.
        data: Logged trajectories (needs ``user_id`` and ``time_step``).
        action_dist: Target probabilities ``(n, n_actions)`` on every row of ``data``.
        gamma: Discount factor in ``[0, 1]``.
        rows: Optional boolean ``(n,)`` training rows; whole users only (each user's next
            rows must be inside).

    Returns:
        The fitted Q-function.
    """
    with _torch_threads(config.num_threads):
        return _fit_fqe(config, data, action_dist, gamma, rows)


def _fit_fqe(
    config: FQEConfig,
    data: LoggedData,
    action_dist: np.ndarray,
    gamma: float,
    rows: np.ndarray | None,
) -> FittedQ:
    traj = data.trajectories()
    nxt = traj.next_row()
    train = np.ones(data.n_rounds, bool) if rows is None else np.asarray(rows, bool)
    assert data.time_step is not None
    idx = np.flatnonzero(train)
    gen = torch.Generator().manual_seed(int(config.seed))
    device = torch.device(config.device)
    max_time = int(data.time_step.max())
    reward_scale = float(np.std(data.reward[idx])) or 1.0
    raw = _raw_features(data.obs, data.time_step, max_time, config.time_feature)
    mean, scale = raw[idx].mean(axis=0), raw[idx].std(axis=0)
    scale[scale == 0] = 1.0
    x_all = ((raw - mean) / scale).astype(np.float32)
    net = _make_net(x_all.shape[1], data.n_actions, config.hidden_sizes, gen).to(device)
    fitted = FittedQ(net, mean, scale, reward_scale, max_time, config)
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    has_next = nxt[idx] >= 0
    next_idx = nxt[idx][has_next]
    x_t = torch.from_numpy(x_all[idx]).to(device)
    a_t = torch.from_numpy(data.action[idx]).to(device)
    r_scaled = data.reward[idx] / reward_scale
    n_iter = config.n_iterations or traj.horizon
    for _ in range(n_iter):
        target = r_scaled.copy()
        if len(next_idx):
            q_next = fitted._predict(x_all[next_idx]) / reward_scale
            v_next = np.einsum("ij,ij->i", action_dist[next_idx], q_next)
            target[has_next] += gamma * v_next
        y_t = torch.from_numpy(target.astype(np.float32)).to(device)
        batch = min(config.batch_size, len(idx))
        for step in range(config.n_steps):
            for group in opt.param_groups:
                group["lr"] = config.learning_rate * (1.0 - 0.9 * step / config.n_steps)
            b = torch.randint(len(idx), (batch,), generator=gen).to(device)
            q = net(x_t[b]).gather(1, a_t[b, None]).squeeze(1)
            loss = torch.mean((q - y_t[b]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return fitted


def cross_fit_q(
    config: FQEConfig,
    data: LoggedData,
    action_dist: np.ndarray,
    gamma: float,
    n_folds: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold Q estimates ``(n, n_actions)``: folds by user, each scored by an FQE fitted
    on the other users."""
    if data.user_id is None or data.time_step is None:
        raise ValueError("FQE needs `user_id` and `time_step` in LoggedData")
    folds = make_folds(data.n_rounds, n_folds, seed, data.user_id)
    out = np.empty((data.n_rounds, data.n_actions))
    for k in range(n_folds):
        test = folds == k
        fitted = fit_fqe(config, data, action_dist, gamma, rows=~test)
        obs = None if data.obs is None else data.obs[test]
        out[test] = fitted.predict(obs, data.time_step[test])
    return out
