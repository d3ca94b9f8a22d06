"""Hillstrom e-mail experiment: off-policy values of targeting rules against matched arms."""

from __future__ import annotations

import numpy as np
import pytest
from shared_data import SHARED_DATA  # noqa: E402

from agents.ope import DR, IPS, SNIPS
from agents.ope.hillstrom import (
    HILLSTROM_ARMS,
    HILLSTROM_POLICIES,
    evaluate_hillstrom,
    hillstrom_logged_data,
    load_hillstrom,
)
from predictors.errors import DataValidationError

CSV = SHARED_DATA / "hillstrom" / "hillstrom.csv"
needs_csv = pytest.mark.skipif(not CSV.is_file(), reason="shared/data/hillstrom not found")


@pytest.fixture(scope="module")
def customers():
    if not CSV.is_file():
        pytest.skip("shared/data/hillstrom not found")
    return load_hillstrom(CSV)


@pytest.mark.shared_data
@needs_csv
def test_logged_data_is_the_randomised_experiment(customers) -> None:
    data = hillstrom_logged_data(customers, "visit")
    assert data.n_rounds == 64_000 and data.n_actions == 3
    counts = np.bincount(data.action, minlength=3)
    assert dict(zip(HILLSTROM_ARMS, counts.tolist(), strict=True)) == {
        "No E-Mail": 21_306, "Mens E-Mail": 21_307, "Womens E-Mail": 21_387}


@pytest.mark.shared_data
@needs_csv
def test_off_policy_values_agree_with_matched_arms(customers) -> None:
    policies = ["match-history", "mens-if-recent", "womens-to-women-buyers"]
    rows = evaluate_hillstrom(customers, [IPS(), SNIPS(), DR()], policies, n_boot=150, seed=0)
    by = {(r["policy"], r["outcome"], r["estimator"]): r for r in rows}
    for policy in policies:
        for outcome in ("visit", "conversion", "spend"):
            matched = by[(policy, outcome, "matched")]
            # SNIPS of a deterministic rule under a constant propensity is the matched mean
            assert by[(policy, outcome, "snips")]["mean"] == pytest.approx(matched["mean"])
            for est in ("ips", "dr"):
                r = by[(policy, outcome, est)]
                assert r["low"] <= matched["mean"] <= r["high"], (policy, outcome, est)


@pytest.mark.shared_data
@needs_csv
def test_rules_are_deterministic_and_use_the_catalog(customers) -> None:
    for name, rule in HILLSTROM_POLICIES.items():
        arm = rule(customers)
        assert arm.shape == (len(customers),), name
        assert set(np.unique(arm)) <= {0, 1, 2}, name


def test_loader_names_file_row_and_column(tmp_path) -> None:
    path = tmp_path / "hillstrom.csv"
    path.write_text(
        "recency,history_segment,history,mens,womens,zip_code,newbie,channel,segment,visit,"
        "conversion,spend\n"
        "10,x,142.44,1,0,Urban,0,Phone,Womens E-Mail,0,0,0\n"
        "6,x,329.08,1,1,Rural,1,Web,SMS,0,0,0\n")
    with pytest.raises(DataValidationError, match=r"row 3, column 'segment'"):
        load_hillstrom(path)
