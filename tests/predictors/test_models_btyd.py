"""BG/NBD and Pareto/NBD baselines (through lifetimes) on a toy customer base drawn from BG/NBD."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictors import ConfigError
from predictors.models.btyd import BTYDBaseline, BTYDConfig, rfm_summary

pytest.importorskip("lifetimes")


def _bgnbd_base(n: int, r: float, alpha: float, a: float, b: float, T: float,
                seed: int = 0) -> pd.DataFrame:
    """Customers drawn from BG/NBD: Poisson purchases at rate lambda ~ Gamma(r, 1/alpha),
    dropout after each purchase with p ~ Beta(a, b), observed for T."""
    rng = np.random.default_rng(seed)
    lam, p = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    x, tx = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T:
                break
            x[i], tx[i] = x[i] + 1, t
            if rng.random() < p[i]:
                break
    return pd.DataFrame({"frequency": x, "recency": tx, "T": np.full(n, T)})


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return _bgnbd_base(3000, r=0.8, alpha=4.0, a=0.8, b=2.5, T=40.0)


def test_rfm_summary_counts_purchase_periods() -> None:
    panel = pd.DataFrame({"user_id": [7, 7, 7, 7, 8, 9], "period": [2, 3, 5, 9, 4, 1],
                          "purchases": [3, 0, 1, 1, 1, 0]})
    s = rfm_summary(panel, 9)  # period 9 is after the end: left out
    assert list(s.index) == [7, 8]  # user 9 never purchased
    assert s.loc[7].tolist() == [1.0, 3.0, 6.5]
    assert s.loc[8].tolist() == [0.0, 0.0, 4.5]


def test_bgnbd_fit_recovers_parameters(base) -> None:
    m = BTYDBaseline(BTYDConfig("bgnbd")).fit(base)
    p = m.params_
    assert p["r"] == pytest.approx(0.8, rel=0.25)
    assert p["alpha"] == pytest.approx(4.0, rel=0.35)
    assert p["a"] / (p["a"] + p["b"]) == pytest.approx(0.8 / 3.3, rel=0.35)
    e5, e10 = m.expected_purchases(base, 5), m.expected_purchases(base, 10)
    assert (e10 >= e5).all() and (e5 >= 0).all()
    alive, any10 = m.p_alive(base), m.p_any_purchase(base, 10)
    assert ((0 <= any10) & (any10 <= alive + 1e-12) & (alive <= 1)).all()
    # more purchases, same recency and age: a higher chance of buying again
    assert any10[base["frequency"].to_numpy() >= 5].mean() > any10.mean()


def test_bgnbd_p_any_matches_lifetimes_for_a_new_customer(base) -> None:
    """For a customer just acquired (x = recency = T = 0), P(any purchase in t) is the
    model's unconditional 1 - P(N(t) = 0), which lifetimes computes in its own way."""
    m = BTYDBaseline(BTYDConfig("bgnbd")).fit(base)
    new = pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [0.0]})
    for t in (1.0, 6.0, 20.0):
        ref = 1 - float(m.fitter_.probability_of_n_purchases_up_to_time(t, 0))
        assert m.p_any_purchase(new, t)[0] == pytest.approx(ref, rel=1e-6)


def test_pareto_nbd_fits_and_forecasts(base) -> None:
    small = base.iloc[:400]
    m = BTYDBaseline(BTYDConfig("pareto_nbd")).fit(small)
    assert set(m.params_) == {"r", "alpha", "s", "beta"}
    e = m.expected_purchases(small, 8)
    assert np.isfinite(e).all() and (e >= 0).all()
    p = m.p_any_purchase(small, 8)
    assert ((0 <= p) & (p <= 1)).all()
    # the two models agree on the base's total to within a third (same data, similar models)
    bg = BTYDBaseline().fit(small).expected_purchases(small, 8)
    assert e.sum() == pytest.approx(bg.sum(), rel=0.33)


def test_btyd_config_checks() -> None:
    with pytest.raises(ConfigError, match="model"):
        BTYDConfig("bgnb")
    with pytest.raises(ConfigError, match="penalizer"):
        BTYDConfig(penalizer=-1.0)
    with pytest.raises(ConfigError, match="empty"):
        BTYDBaseline().fit(pd.DataFrame({"frequency": [], "recency": [], "T": []}))
