"""The logging policy of a dataset: named for synthetic shops, estimated from other logs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_logging_rule_reads_the_generator_and_falls_back_to_the_estimate() -> None:
    from agents.logged_policy import logging_rule
    from predictors import DatasetSpec, default_catalog

    def spec(extra):
        return DatasetSpec(actions=default_catalog(), extra=extra)

    assert logging_rule(spec({"generator": {"logging": "campaign"}})) == "rule:campaign"
    assert logging_rule(spec({"generator": {"logging": "uniform"}})) == "rule:random"
    assert logging_rule(spec({"generator": "panel_bench"})) == "rule:logged"
    assert logging_rule(spec({})) == "rule:logged"


def test_logged_rule_recovers_the_campaign_from_its_logs(tiny_synthetic_run) -> None:
    """Fitted on a campaign-logged shop, the estimate puts the campaign's choice first in most
    states and its distribution near the campaign's."""
    from agents.baselines import make_rule
    from predictors import build_panel, observation_names, observations_from_panel, open_dataset

    data, _ = tiny_synthetic_run
    ds = open_dataset(data)
    names = observation_names() + ["static_extra"]  # a column the estimate must ignore
    est = make_rule("logged", ds.spec, names, data=data, model="logistic")
    camp = make_rule("campaign", ds.spec, names)
    base = observations_from_panel(build_panel(ds), ds.spec)
    obs = np.concatenate([base, np.full((len(base), 1), 7.0)], axis=1)
    p, q = est.action_probabilities(obs), camp.action_probabilities(obs)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (p.argmax(axis=1) == q.argmax(axis=1)).mean() > 0.8
    assert np.abs(p - q).sum(axis=1).mean() < 0.5
    shifted = obs.copy()
    shifted[:, -1] = -3.0
    np.testing.assert_array_equal(est.action_probabilities(shifted), p)
    with pytest.raises(ValueError, match="pass `data`"):
        make_rule("logged", ds.spec, names)


def test_fit_logging_model_names_what_the_logs_lack() -> None:
    from predictors import DatasetSpec, default_catalog
    from predictors.propensity import fit_logging_model

    spec = DatasetSpec(actions=default_catalog())
    panel = pd.DataFrame({"user_id": np.repeat(np.arange(20), 3), "period": np.tile(range(3), 20),
                          "visits": 0, "views": 0, "carts": 0, "purchases": 0, "favs": 0,
                          "unsubscribes": 0, "revenue": 0.0, "action_index": -1})
    with pytest.raises(ValueError, match="needs an interventions table"):
        fit_logging_model(panel, spec)
    with pytest.raises(ValueError, match="only action 'none' is ever logged"):
        fit_logging_model(panel.assign(action_index=0), spec)


def test_safe_branches_resolve_auto_to_the_shops_logging_policy(tiny_synthetic_run) -> None:
    """``support_policy: auto`` is the campaign on a campaign-logged shop, and the estimate
    when the spec does not say how the logs were made."""
    from agents.baselines import make_rule
    from agents.shop_branches import ShopBranchConfig, ShopBranches
    from envs.shop_env import load_learned_shop

    data, pred = tiny_synthetic_run
    shop = load_learned_shop(pred, data)
    cfg = ShopBranchConfig(support="logging")
    assert ShopBranches(shop.simulator, shop.starts, cfg, data).support_rule == "rule:campaign"
    sim = shop.simulator.clone()
    sim.spec = dataclasses.replace(sim.spec, extra={})
    src = ShopBranches(sim, shop.starts, cfg, data)
    assert src.support_rule == "rule:logged"
    rule = make_rule("email_capped", shop.spec.actions, shop.observation_names)
    obs = src.observe(src.sample_states(rule, 3, 32, np.random.default_rng(0)))
    ok = src.supported(obs)
    assert ok.shape == (32, sim.n_actions) and ok.any(axis=1).all()
    assert ShopBranches(shop.simulator, shop.starts).support_rule is None
