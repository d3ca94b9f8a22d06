"""Open Bandit Dataset: BTS probabilities and the off-policy estimate of its click rate."""

from __future__ import annotations

import numpy as np
import pytest
from shared_data import SHARED_DATA  # noqa: E402

from agents.ope import DR, IPS, SNIPS
from agents.ope.obd import (
    OBD_CAMPAIGNS,
    BTSConfig,
    bts_action_dist,
    evaluate_obd,
    load_obd_logs,
)
from predictors.errors import DataValidationError

OBD = SHARED_DATA / "obd"
needs_obd = pytest.mark.skipif(not OBD.is_dir(), reason="shared/data/obd not found")


@pytest.mark.parametrize("method", ["frequency", "posterior"])
def test_bts_probabilities_are_per_position_distributions(method) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    logs = pd.DataFrame({"item_id": rng.integers(0, 5, 300), "position": rng.integers(1, 4, 300),
                         "click": rng.integers(0, 2, 300)})
    cfg = BTSConfig(method=method, n_sim=5000, seed=1)
    pi = bts_action_dist(logs, 5, cfg)
    assert pi.shape == (5, 3)
    np.testing.assert_allclose(pi.sum(axis=0), 1.0)
    np.testing.assert_array_equal(pi, bts_action_dist(logs, 5, cfg))  # seeded


def test_posterior_ranks_the_better_item_first() -> None:
    import pandas as pd

    # item 0: 50 clicks in 100 shows; items 1-3: 0 clicks in 100 shows
    logs = pd.DataFrame({"item_id": np.repeat(np.arange(4), 100), "position": 1,
                         "click": np.r_[np.ones(50), np.zeros(350)].astype(int)})
    pi = bts_action_dist(logs, 4, BTSConfig(n_sim=2000))
    assert pi[0, 0] > 0.99 and pi[0, 1:].sum() < 0.01


def test_loader_names_file_row_and_column(tmp_path) -> None:
    folder = tmp_path / "random" / "men"
    folder.mkdir(parents=True)
    (folder / "men.csv").write_text(
        ",timestamp,item_id,position,click,propensity_score\n"
        "0,t,3,1,0,0.03\n1,t,40,2,0,0.03\n")
    with pytest.raises(DataValidationError, match=r"men.csv, row 3, column 'item_id'"):
        load_obd_logs(tmp_path, "random", "men")
    with pytest.raises(FileNotFoundError, match="OBD log not found"):
        load_obd_logs(tmp_path, "bts", "men")


@pytest.mark.shared_data
@needs_obd
@pytest.mark.parametrize("campaign", list(OBD_CAMPAIGNS))
def test_bts_click_rate_from_random_logs(campaign) -> None:
    result = evaluate_obd(OBD, campaign, [IPS(), SNIPS(), DR()], BTSConfig(method="frequency"),
                          n_boot=300, seed=0)
    # the computed probabilities track the logged BTS propensities (not copied from them)
    assert result["agreement"]["log_corr"] > 0.5
    on = result["on_policy"]["mean"]
    for est in result["estimates"]:
        assert est["low"] <= on <= est["high"], (campaign, est, on)
