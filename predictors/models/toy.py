"""A tiny simulated panel with a planted intervention effect (tests and examples).

Each user has a latent activity level; each period a logging policy sends an action (targeted at
active users when ``targeted``), the user visits with probability
``sigmoid(level + 0.8 * visited_last_period + lift[action])`` and buys on a visit with a fixed
probability; a user leaves for good with a small hazard. The planted effect is ``lift``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def toy_panel(n_users: int = 200, n_periods: int = 10, seed: int = 0,
              lift: tuple[float, ...] = (0.0, 1.5), targeted: bool = False,
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate ``(panel, users)`` with actions ``range(len(lift))`` (action 0 is ``none``).

    Args:
        n_users: Users (each starts at a random period in the first half).
        n_periods: Periods of the dataset.
        seed: Seed of the simulation.
        lift: Logit lift of P(visit) per action index.
        targeted: Send actions with probability rising with the user's activity level.

    Example:
        >>> panel, users = toy_panel(n_users=5, n_periods=4, seed=1)
        >>> list(panel.columns[:3])
        ['user_id', 'period', 'visits']
    """
    rng = np.random.default_rng(seed)
    n_act = len(lift)
    level = rng.normal(-1.0, 1.0, n_users)
    segment = rng.choice(["a", "b"], n_users)
    start = rng.integers(0, max(1, n_periods // 2), n_users)
    rows = []
    for u in range(n_users):
        alive, last_visit = True, 0
        for t in range(start[u], n_periods):
            if targeted:
                p_send = 1 / (1 + np.exp(-(level[u] + 0.5)))
                probs = np.r_[1 - p_send, np.full(n_act - 1, p_send / max(n_act - 1, 1))]
            else:
                probs = np.full(n_act, 1 / n_act)
            a = int(rng.choice(n_act, p=probs))
            logit = level[u] + 0.8 * last_visit + lift[a] + (0.5 if segment[u] == "b" else 0)
            visit = alive and rng.random() < 1 / (1 + np.exp(-logit))
            buy = visit and rng.random() < 0.4
            rev = float(np.exp(rng.normal(3.0, 0.5))) if buy else 0.0
            unsub = visit and a > 0 and rng.random() < 0.02
            rows.append((u, t, int(visit) * (1 + rng.poisson(1)), int(visit) * rng.poisson(3),
                         int(buy), int(buy), 0, int(unsub), rev, a, probs[a]))
            last_visit = int(visit)
            if alive and rng.random() < 0.03:
                alive = False
    panel = pd.DataFrame(rows, columns=["user_id", "period", "visits", "views", "carts",
                                        "purchases", "favs", "unsubscribes", "revenue",
                                        "action_index", "propensity"])
    for c in ("period", "visits", "views", "carts", "purchases", "favs", "unsubscribes"):
        panel[c] = panel[c].astype("int32")
    panel["action_index"] = panel["action_index"].astype("int16")
    has_event = panel["visits"] > 0
    panel["active"] = has_event[::-1].groupby(panel["user_id"][::-1]).cummax()[::-1].astype(bool)
    panel["action"] = pd.Series([f"a{i}" if i else "none" for i in panel["action_index"]],
                                dtype="string")
    users = pd.DataFrame({"user_id": np.arange(n_users), "segment": segment,
                          "age": rng.normal(40, 10, n_users)})
    return panel, users
