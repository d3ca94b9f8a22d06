"""Who responds on Hillstrom: each family's predicted uplift against meta-learner baselines.

For each e-mail (vs ``none``) and binary outcome (visit, conversion), on the held-out half of the
customers:

* the Qini coefficient and AUUC (:mod:`predictors.models.uplift`) of the ranking by each
  family's predicted effect, beside three baselines fitted on the same static features and the
  same training half: the two-model logistic regression, a T-learner and a DR-learner
  (:mod:`predictors.models.metalearners`, scikit-learn gradient boosting; the DR-learner's
  pseudo-outcomes use the design's assignment probability 1/3 per arm);
* a paired bootstrap over held-out customers of each family's Qini and AUUC minus those of the
  best baseline (the baseline with the highest Qini on the held-out half, the hardest
  comparison): a family *beats* the baselines when that interval lies above 0;
* per customer attribute, the measured effect of every group (difference of arm means) against
  each model's mean predicted effect there, and whether the model orders the pairs of groups
  whose measured difference is significant the same way (:func:`group_agreement`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from predictors.models.heterogeneity import attribute_groups, group_agreement
from predictors.models.metalearners import BoostingConfig, DRLearner, TLearner
from predictors.models.sequence import StaticEncoder
from predictors.models.uplift import TwoModelLogistic, uplift_scores

#: Outcomes whose uplift ranking is scored: name -> panel column (``> 0`` is a response).
UPLIFT_OUTCOMES = {"visit": "visits", "conversion": "purchases"}
#: The Hillstrom design assigns each of its three arms with probability 1/3.
HILLSTROM_PSCORE = 1.0 / 3.0
#: Baseline names in report order.
BASELINES = ("two_model_lr", "t_learner", "dr_learner")


def _baselines(x_tr: np.ndarray, arm_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray,
               seed: int, boosting: BoostingConfig) -> dict[str, np.ndarray]:
    """Predicted uplift of each baseline on ``x_te`` (arm 1 treated, 0 control, -1 other)."""
    pair = arm_tr >= 0
    two = TwoModelLogistic().fit(x_tr[pair], y_tr[pair], arm_tr[pair] == 1)
    t = TLearner(boosting, seed=seed).fit(x_tr, y_tr, arm_tr)
    dr = DRLearner(boosting, seed=seed).fit(x_tr, y_tr, arm_tr, HILLSTROM_PSCORE,
                                            HILLSTROM_PSCORE)
    return {"two_model_lr": two.predict_uplift(x_te), "t_learner": t.predict_uplift(x_te),
            "dr_learner": dr.predict_uplift(x_te)}


def uplift_report(users: pd.DataFrame | None, by_user: pd.DataFrame, train_ids: np.ndarray,
                  test_ids: np.ndarray, predicted: dict[str, dict[str, dict[str, np.ndarray]]],
                  emails: tuple[str, ...], n_boot: int = 200, alpha: float = 0.05,
                  seed: int = 0, boosting: BoostingConfig | None = None) -> dict[str, Any]:
    """Qini / AUUC per e-mail and outcome against the baselines, and the group agreement.

    Args:
        users: The users table (``user_id`` + pre-treatment attributes); None: no features
            (the baselines are then constant and no groups exist).
        by_user: The panel indexed by ``user_id`` (columns ``action``, ``visits``,
            ``purchases``).
        train_ids: Customers the baselines are fitted on (the families' training half).
        test_ids: The held-out customers, in the order of the ``predicted`` arrays.
        predicted: Family -> e-mail -> outcome -> ``(n_test,)`` predicted effect vs ``none``.
        emails: E-mail action names (each compared with ``none``).
        n_boot: Bootstrap resamples of the held-out customers.
        alpha: 1 - confidence level of every interval.
        seed: Seed of the baselines and the bootstrap.
        boosting: Hyperparameters of the T- and DR-learner models.

    Returns:
        JSON-ready dict: ``baselines``, ``n_boot``, ``tasks`` (e-mail -> outcome -> ``scores``
        (model -> Qini/AUUC with intervals), ``best_baseline``, ``vs_best`` (family -> paired
        difference with interval), ``vs_baselines`` (family -> baseline -> the same),
        ``beats`` (family -> bool: the difference with the best baseline is above 0)),
        ``groups`` (e-mail -> outcome -> attribute -> :func:`group_agreement`) and
        ``agreement`` (e-mail -> outcome -> model -> ``n_significant``, ``n_agree``,
        ``n_signed_groups``, ``n_sign_agree`` summed over the attributes).
    """
    boosting = boosting or BoostingConfig()
    enc = StaticEncoder.fit(None if users is None else users[users["user_id"].isin(train_ids)])
    x_tr, x_te = enc.transform(users, train_ids), enc.transform(users, test_ids)
    act_tr = by_user.loc[train_ids, "action"].astype(str).to_numpy()
    act_te = by_user.loc[test_ids, "action"].astype(str).to_numpy()
    if users is not None:
        u_te = users.drop_duplicates("user_id").set_index("user_id").reindex(
            pd.Index(test_ids, name="user_id")).reset_index()
        groups = attribute_groups(u_te)
    else:
        groups = {}
    out: dict[str, Any] = {"baselines": list(BASELINES), "n_boot": n_boot, "tasks": {},
                           "groups": {}, "agreement": {}}
    for e in emails:
        arm_tr = np.where(act_tr == e, 1, np.where(act_tr == "none", 0, -1))
        arm_te = np.where(act_te == e, 1, np.where(act_te == "none", 0, -1))
        pair = arm_te >= 0
        for key in ("tasks", "groups", "agreement"):
            out[key][e] = {}
        for o, col in UPLIFT_OUTCOMES.items():
            y_tr = (by_user.loc[train_ids, col].to_numpy() > 0).astype(float)
            y_te = (by_user.loc[test_ids, col].to_numpy() > 0).astype(float)
            models = {f: p[e][o] for f, p in predicted.items()}
            models.update(_baselines(x_tr, arm_tr, y_tr, x_te, seed, boosting))
            pairs = tuple((f, b) for f in predicted for b in BASELINES)
            sc = uplift_scores({k: v[pair] for k, v in models.items()}, y_te[pair],
                               arm_te[pair] == 1, n_boot=n_boot, alpha=alpha, seed=seed,
                               pairs=pairs)
            best = max(BASELINES, key=lambda b: sc[b]["qini"])
            every = {f: {b: sc.pop(f"{f}-{b}") for b in BASELINES} for f in predicted}
            vs = {f: every[f][best] for f in predicted}
            out["tasks"][e][o] = {"scores": sc, "best_baseline": best, "vs_best": vs,
                                  "vs_baselines": every,
                                  "beats": {f: bool(v["qini_low"] > 0) for f, v in vs.items()}}
            per_attr = {a: group_agreement(g.to_numpy(), y_te, arm_te, np.ones(len(y_te), bool),
                                           models, alpha=alpha) for a, g in groups.items()}
            out["groups"][e][o] = per_attr
            out["agreement"][e][o] = {
                m: {k: sum(r["agreement"][m][k] for r in per_attr.values())
                    for k in ("n_significant", "n_agree", "n_signed_groups", "n_sign_agree")}
                for m in models}
    return out
