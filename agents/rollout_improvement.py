r"""Policy improvement from common-random-number branch rollouts of the true world.

The world is a simulator, so the value of every action at a state can be MEASURED instead of
learned from noisy returns: copy the users, and for every action ``a`` run "``a`` now, then the
current policy" to the end of the episode with the same random numbers in every branch
(:meth:`predictors.synthetic.World.step` draws one fixed-size block of uniforms per period,
whatever the actions, so a fresh generator with one seed per branch gives common random
numbers). Differences between branches are then differences the action made, not luck:

.. math::

    A(s, a) = G(s, a) - G(s, \pi(s)),\qquad
    G(s, a) = \sum_{k=0}^{T - t - 1} r_{t+k},\ a_t = a,\ a_{t+k} = \pi(o_{t+k})\ (k \ge 1)

This is the rollout algorithm of Bertsekas and Tsitsiklis (Neuro-Dynamic Programming, 1996) /
rollout classification policy iteration (Lagoudakis and Parr, ICML 2003), with TRPO's "vine"
common-random-number trick. One iteration:

1. **States.** Start users (the env's, at the end of their log) follow the current policy for a
   uniform random number of periods ``t`` in ``[0, T)``, so every period of the episode is
   covered with the weight evaluation gives it; churned users stay (the shop does not see
   churn, and sends to them still cost), exactly as :func:`predictors.true_policy_value`
   counts.
2. **Branches.** For every state and action the return to the end of the episode
   (``T - t`` periods, undiscounted: evaluation counts TRUE value over ``T`` periods), with the
   expected one-period reward (:meth:`~predictors.synthetic.World.expected_outcomes`) as the
   per-step reward by default (same expectation, less noise), averaged over ``repeats``
   independent seeds.
3. **Fit.** A Q-network regresses all actions' returns at once (scaled by the learner's
   ``reward_scale``): squared error of the state's mean plus ``advantage_weight`` times that of
   the deviations from it (for weight 1 this is the plain per-action squared error; more weight
   spends the net's capacity on the small, low-variance action gaps).
4. The greedy policy of the fitted net is the improved policy, the follow-up policy of the next
   iteration's branches.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.policy import BasePolicy, actions_from_uniforms
from predictors import StartStates, World, check_choice, check_int, check_number

__all__ = ["BranchStates", "GreedyQPolicy", "MeanQ", "RolloutConfig", "WorldBranches",
           "branch_returns", "improve_by_branches", "improve_by_rollouts", "sample_states",
           "seeded_init"]


@dataclass(frozen=True)
class RolloutConfig:
    """Options of :func:`improve_by_rollouts`.

    Attributes:
        n_states: States sampled per iteration. One branch return is a noisy target (default
            world, the tuned rule's states: noise s.d. 2.4-3.9 per action, against a spread of
            the true advantage across states of 0.8-2.3), so the fit needs many states.
        iterations: Policy-improvement iterations (each: new states under the current policy,
            branches, a fit; the fitted greedy policy follows in the next).
        repeats: Independent common-random-number seeds per state (branch returns averaged).
        reward: Per-step branch reward: ``expected`` (the world's exact one-period
            expectation) or ``sampled``.
        epochs: Passes over the targets per fit.
        batch_size: Minibatch size of the fit.
        learning_rate: Adam's step size.
        advantage_weight: Weight of the action-gap part of the squared error (1: plain MSE).
        holdout: Share of the states held out to report the fit's error and agreement.
        switch_margin: Money added to the follow-up policy's own action in the targets, so
            the improved policy leaves it only where another action measures better by more
            than this (a conservative step: 0 is the plain rollout policy).
        ensemble: Q-networks fitted per iteration, each on its own bootstrap resample of the
            states (bagging); the improved policy is the greedy policy of their mean Q-value,
            and with more than one the given network is finally fitted to that mean (one
            more fit, on noise-free targets), so it holds the improved policy alone. One
            fit chases its targets' noise; the mean of several fits averages it out.
        seed: Seed of the state sampling, the branches and the minibatch order.
    """

    n_states: int = 262144
    iterations: int = 3
    repeats: int = 1
    reward: str = "expected"
    epochs: int = 30
    batch_size: int = 2048
    learning_rate: float = 1e-3
    advantage_weight: float = 30.0
    holdout: float = 0.1
    switch_margin: float = 2.0
    ensemble: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self, "n_states", "iterations", "repeats", "epochs", "batch_size",
                  "ensemble", ge=1)
        check_choice(self, "reward", ("expected", "sampled"))
        check_number(self, "learning_rate", "advantage_weight", gt=0)
        check_number(self, "switch_margin", ge=0)
        check_number(self, "holdout", ge=0, lt=1)


class GreedyQPolicy(BasePolicy):
    """The greedy (argmax) policy of a Q-network ``obs (n, d) -> (n, n_actions)``.

    Args:
        q_net: The network; it is deep-copied, so later training does not change the policy.
        n_actions: Number of actions.
    """

    def __init__(self, q_net: nn.Module, n_actions: int) -> None:
        super().__init__(n_actions)
        self.q_net = copy.deepcopy(q_net).cpu().eval()

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values, shape ``(n, n_actions)``."""
        with torch.no_grad():
            return self.q_net(torch.as_tensor(np.asarray(obs, np.float32))).numpy()

    def _action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        return np.eye(self.n_actions)[self.q_values(obs).argmax(axis=1)]


@dataclass
class BranchStates:
    """Sampled states: the users (latent state + history), where they came from, time left.

    Attributes:
        users: The users at their sampled period.
        src: Row of each user in the start users (for static features), shape (n,).
        remaining: Periods left in the episode (``T - t``, >= 1), shape (n,).
    """

    users: StartStates
    src: np.ndarray
    remaining: np.ndarray


def _observe(users: StartStates, static: np.ndarray | None, src: np.ndarray) -> np.ndarray:
    return _observe_rows(users, None if static is None else static[src])


def _observe_rows(users: StartStates, static_rows: np.ndarray | None) -> np.ndarray:
    """The observation of ``users``, followed by their own static features (row per user)."""
    obs = users.history.observation().astype(np.float32)
    if static_rows is not None:
        obs = np.concatenate([obs, static_rows.astype(np.float32)], axis=1)
    return obs


def _follow(policy: BasePolicy, obs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """``policy``'s actions, drawn as :meth:`BasePolicy.act` draws them from ``uniforms``."""
    return actions_from_uniforms(policy.action_probabilities(obs), uniforms)


#: A batch drops its finished users once they are this share of it (fewer, larger copies;
#: the finished users kept until then are stepped with the rest and their rewards ignored).
_DROP_SHARE = 0.2


def _narrow(users: StartStates, live: np.ndarray, keep: np.ndarray
            ) -> tuple[StartStates, np.ndarray]:
    """The users and batch rows ``keep`` (a mask over the current ones) once the others are
    :data:`_DROP_SHARE` of them; until then all of them."""
    if keep.mean() > 1.0 - _DROP_SHARE:
        return users, live
    return users.subset(keep), live[keep]


def sample_states(world: World, starts: StartStates, policy: BasePolicy, horizon: int,
                  n_states: int, rng: np.random.Generator,
                  static: np.ndarray | None = None) -> BranchStates:
    """Run ``policy`` from random start users for a uniform number of periods in [0, horizon).

    Users whose period is reached leave the batch (:func:`_narrow`), but every period still
    draws the whole batch's random numbers (the world's block and one uniform per state for
    the policy, as :meth:`BasePolicy.act` draws), and the users left take their own columns,
    so the states do not depend on when the others stopped.

    Args:
        world: The world.
        starts: Start users.
        policy: The policy followed (its :meth:`~BasePolicy.action_probabilities`, sampled).
        horizon: Episode length ``T``.
        n_states: States to sample.
        rng: Generator of the draws (start users, periods, the world's and policy's randoms).
        static: Optional ``(starts.n, k)`` static features appended to the observation.

    Returns:
        The sampled states; ``remaining = T - t``.
    """
    src = rng.integers(starts.n, size=n_states)
    t_stop = rng.integers(horizon, size=n_states)
    static_rows = None if static is None else static[src]
    users = starts.subset(src)
    snap = starts.subset(src)
    live = np.arange(n_states)
    last = int(t_stop.max(initial=0))
    for t in range(last + 1):
        done = t_stop[live] == t
        if done.any():
            snap.put(live[done], users.subset(done))
        if t == last:
            break
        users, live = _narrow(users, live, t_stop[live] > t)
        obs = _observe_rows(users, None if static_rows is None else static_rows[live])
        action = _follow(policy, obs, rng.random(n_states)[live])
        users.advance(world, action, None, world.draw_uniforms(n_states, rng)[:, live])
    return BranchStates(snap, src, horizon - t_stop)


def branch_returns(world: World, states: BranchStates, policy: BasePolicy, seed: int,
                   reward: str = "expected", static: np.ndarray | None = None,
                   actions: np.ndarray | None = None) -> np.ndarray:
    """Return of "action ``a`` now, then ``policy``" to the end of the episode, every ``a``.

    Every branch starts from a copy of the same users with a fresh generator of the same
    ``seed`` (the world's and the policy's draws), so the branches share their random numbers.
    A state leaves its branch once its episode ends (:func:`_narrow`); every period still
    draws the whole batch's random numbers and the states left take their own columns, so a
    state's return does not depend on the others' episode lengths.

    Args:
        world: The world.
        states: Sampled states (:func:`sample_states`).
        policy: The follow-up policy (its :meth:`~BasePolicy.action_probabilities`,
            sampled as :meth:`BasePolicy.act` samples them).
        seed: Seed of every branch.
        reward: ``expected`` (exact one-period expectation per step) or ``sampled``.
        static: Static features of the start users (as in :func:`sample_states`).
        actions: First actions to branch on (default: all).

    Returns:
        Undiscounted returns, shape ``(n, len(actions))``.

    Example:
        >>> from agents.policy import FixedActionPolicy
        >>> from predictors import sample_start_states
        >>> world = World()
        >>> starts = sample_start_states(world, 8, seed=0, observed_periods=2)
        >>> never = FixedActionPolicy(0, world.n_actions)
        >>> states = sample_states(world, starts, never, 4, 16, np.random.default_rng(0))
        >>> g = branch_returns(world, states, never, seed=1, actions=[1, 1])
        >>> g.shape, bool((g[:, 0] == g[:, 1]).all())  # same action, same random numbers
        ((16, 2), True)
    """
    first = np.arange(world.n_actions) if actions is None else np.asarray(actions)
    n = states.users.n
    out = np.zeros((n, len(first)))
    steps = int(states.remaining.max(initial=0))
    static_rows = None if static is None else static[states.src]
    key = "expected_reward" if reward == "expected" else "reward"
    for j, a in enumerate(first):
        users, live = states.users.copy(), np.arange(n)
        world_rng = np.random.default_rng([seed, 0])
        policy_rng = np.random.default_rng([seed, 1])
        for k in range(steps):
            users, live = _narrow(users, live, states.remaining[live] > k)
            running = states.remaining[live] > k
            if k == 0:
                action = np.full(len(live), int(a), np.int64)
            else:
                obs = _observe_rows(users, None if static_rows is None else static_rows[live])
                action = _follow(policy, obs, policy_rng.random(n)[live])
            step = users.advance(world, action, None, world.draw_uniforms(n, world_rng)[:, live])
            out[live, j] += np.where(running, step[key], 0.0)
    return out


def _fit(q_net: nn.Module, obs: np.ndarray, target: np.ndarray, cfg: RolloutConfig,
         gen: torch.Generator) -> float:
    """Regress ``q_net(obs)`` on ``target`` (n, n_actions); return the last epoch's loss."""
    dev = next(q_net.parameters()).device
    x = torch.as_tensor(obs, device=dev)
    y = torch.as_tensor(target, dtype=torch.float32, device=dev)
    opt = torch.optim.Adam(q_net.parameters(), lr=cfg.learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    loss_value = float("nan")
    for _ in range(cfg.epochs):
        total, count = 0.0, 0
        for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            q, g = q_net(x[idx]), y[idx]
            qm, gm = q.mean(dim=1), g.mean(dim=1)
            loss = (F.mse_loss(qm, gm)
                    + cfg.advantage_weight * F.mse_loss(q - qm[:, None], g - gm[:, None]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * len(idx), count + len(idx)
        sched.step()
        loss_value = total / count
    return loss_value


class MeanQ(nn.Module):
    """The mean Q-value of several networks (a bagged fit, :attr:`RolloutConfig.ensemble`)."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(obs) for net in self.nets]).mean(dim=0)


def seeded_init(net: nn.Module, gen: torch.Generator) -> nn.Module:
    """``net`` with seeded fresh weights (uniform in +-1/sqrt(fan-in), zero biases)."""
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 2:
                bound = 1.0 / np.sqrt(p.shape[1])
                p.uniform_(-bound, bound, generator=gen)
            else:
                p.zero_()
    return net


def _fit_bagged(q_net: nn.Module, members: list[nn.Module], obs: np.ndarray,
                target: np.ndarray, cfg: RolloutConfig, gen: torch.Generator,
                rng: np.random.Generator, distil: bool) -> nn.Module:
    """The fitted Q-function: ``q_net`` itself (``ensemble`` 1), else the :class:`MeanQ` of
    the ``members`` (``q_net`` and seeded fresh copies of it, created on the first call and
    kept across iterations), each fitted on its own bootstrap resample; with ``distil``,
    ``q_net`` is then fitted to their mean on all the states (the policy stays the mean's)."""
    if cfg.ensemble == 1:
        _fit(q_net, obs, target, cfg, gen)
        return q_net
    if not members:
        members += [q_net] + [seeded_init(copy.deepcopy(q_net), gen)
                              for _ in range(cfg.ensemble - 1)]
    for net in members:
        rows = rng.integers(len(obs), size=len(obs))
        _fit(net, obs[rows], target[rows], cfg, gen)
    mean = MeanQ([copy.deepcopy(net) for net in members])
    if distil:
        with torch.no_grad():
            soft = mean(torch.as_tensor(obs, device=next(mean.parameters()).device))
        _fit(q_net, obs, soft.cpu().numpy(), cfg, gen)
    return mean


class WorldBranches:
    """Branch source of :func:`improve_by_branches` in the true world (:func:`sample_states`,
    :func:`branch_returns`); :class:`agents.shop_branches.ShopBranches` is the learned shop's.

    A branch source has ``n_actions``, ``sample_states(policy, horizon, n, rng)``,
    ``observe(states)`` and ``branch_returns(states, policy, seed, reward)``.
    """

    def __init__(self, world: World, starts: StartStates,
                 static: np.ndarray | None = None) -> None:
        self.world, self.starts, self.static = world, starts, static
        self.n_actions = world.n_actions

    def sample_states(self, policy: BasePolicy, horizon: int, n_states: int,
                      rng: np.random.Generator) -> BranchStates:
        return sample_states(self.world, self.starts, policy, horizon, n_states, rng,
                             self.static)

    def observe(self, states: BranchStates) -> np.ndarray:
        return _observe(states.users, self.static, states.src)

    def branch_returns(self, states: BranchStates, policy: BasePolicy, seed: int,
                       reward: str = "expected") -> np.ndarray:
        return branch_returns(self.world, states, policy, seed, reward, self.static)


def improve_by_rollouts(q_net: nn.Module, world: World, starts: StartStates,
                        policy: BasePolicy, horizon: int = 26,
                        config: RolloutConfig | None = None,
                        static: np.ndarray | None = None,
                        reward_scale: float = 1.0) -> tuple[GreedyQPolicy, dict[str, Any]]:
    """Rollout policy iteration in the true world (:func:`improve_by_branches` of
    :class:`WorldBranches`)."""
    return improve_by_branches(q_net, WorldBranches(world, starts, static), policy, horizon,
                               config, reward_scale)


def improve_by_branches(q_net: nn.Module, source: Any, policy: BasePolicy, horizon: int = 26,
                        config: RolloutConfig | None = None,
                        reward_scale: float = 1.0) -> tuple[GreedyQPolicy, dict[str, Any]]:
    """Rollout policy iteration from ``policy``: fit ``q_net`` to measured action values.

    Args:
        q_net: Q-network ``obs -> (n, n_actions)`` (e.g. SB3 DQN's ``q_net``), fitted in place.
        source: Where the branches run (:class:`WorldBranches`,
            :class:`agents.shop_branches.ShopBranches`).
        policy: The base policy (e.g. the tuned rule).
        horizon: Episode length.
        config: Options.
        reward_scale: Targets are returns times this (the learner's reward scale).

    Returns:
        The improved (greedy) policy and metrics: per iteration ``agreement`` (held-out states
        where the net's argmax is the fitted targets' argmax, switch margin included;
        ``agreement_train`` on the fitted states), ``changed`` (states where the targets'
        argmax is not the follow-up policy's action), ``gain`` (mean measured advantage of the
        targets' argmax over the follow-up action, money), ``fit_loss``, ``seconds``.
    """
    import time

    cfg = config or RolloutConfig()
    n_actions = source.n_actions
    rng = np.random.default_rng([cfg.seed, 11])
    gen = torch.Generator().manual_seed(cfg.seed)
    current: BasePolicy = policy
    history: list[dict[str, Any]] = []
    members: list[nn.Module] = []
    greedy = GreedyQPolicy(q_net, n_actions)
    for it in range(cfg.iterations):
        t0 = time.perf_counter()
        states = source.sample_states(current, horizon, cfg.n_states, rng)
        obs = source.observe(states)
        g = np.mean([source.branch_returns(states, current, int(rng.integers(2**31)),
                                           cfg.reward) for _ in range(cfg.repeats)], axis=0)
        base = np.asarray(current.act(obs, np.random.default_rng(0)), np.int64)
        n_fit = int(round(len(obs) * (1 - cfg.holdout)))
        target = g.copy()
        target[np.arange(len(g)), base] += cfg.switch_margin
        fitted_net = _fit_bagged(q_net, members, obs[:n_fit], target[:n_fit] * reward_scale,
                                 cfg, gen, rng, distil=it == cfg.iterations - 1)
        greedy = GreedyQPolicy(fitted_net, n_actions)
        q = greedy.q_values(obs)
        held = slice(n_fit, None) if n_fit < len(obs) else slice(None)
        best, fitted = g.argmax(axis=1), target.argmax(axis=1)
        rows = np.arange(len(g))
        history.append({
            "iteration": it,
            "agreement": float((q[held].argmax(axis=1) == fitted[held]).mean()),
            "agreement_train": float((q[:n_fit].argmax(axis=1) == fitted[:n_fit]).mean()),
            "changed": float((best != base).mean()),
            "gain": float((g[rows, best] - g[rows, base]).mean()),
            "greedy_changed": float((q.argmax(axis=1) != base).mean()),
            "greedy_gain": float((g[rows, q.argmax(axis=1)] - g[rows, base]).mean()),
            "fit_loss": float(np.mean((q[held] - g[held] * reward_scale) ** 2)),
            "advantage_loss": float(np.mean((q[held] - q[held].mean(axis=1, keepdims=True)
                                             - (g[held] - g[held].mean(axis=1, keepdims=True))
                                             * reward_scale) ** 2)),
            "actions": np.bincount(q.argmax(axis=1), minlength=n_actions).tolist(),
            "base_actions": np.bincount(base, minlength=n_actions).tolist(),
            "seconds": time.perf_counter() - t0})
        current = greedy
    return greedy, {"iterations": history, "states": cfg.n_states * cfg.iterations}
