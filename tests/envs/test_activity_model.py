"""The learned shop's views / carts / favs draws: Poisson by inversion, on common random numbers."""

from __future__ import annotations

import numpy as np
from scipy.stats import poisson

from envs.simulator import ActivityModel

MEANS = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
                  [[2.5, 0.3, 0.1], [4.0, 1.2, 0.2]]])


def test_draws_follow_the_cells_poisson_means() -> None:
    rng = np.random.default_rng(0)
    visit = rng.random(100_000) < 0.6
    purchase = visit & (rng.random(100_000) < 0.4)
    x = ActivityModel(MEANS).sample(visit, purchase, np.random.default_rng(1))
    assert x.shape == (100_000, 3) and x.dtype == np.float32
    assert np.all(x[~visit] == 0)
    for p in (False, True):
        cell = x[visit & (purchase == p)]
        lam = MEANS[1, int(p)]
        assert np.all(np.abs(cell.mean(axis=0) - lam) < 4 * np.sqrt(lam / len(cell)))
        freq = np.array([(cell[:, 0] == k).mean() for k in range(6)])
        np.testing.assert_allclose(freq, poisson.pmf(np.arange(6), lam[0]), atol=0.01)


def test_one_draw_consumes_the_same_random_numbers_whatever_the_outcomes() -> None:
    """Two branches whose visits differ stay in step: the generator's next numbers agree."""
    model = ActivityModel(MEANS)
    n = 1000
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    visit_a = np.zeros(n, bool)
    visit_b = np.ones(n, bool)
    xa = model.sample(visit_a, visit_a, a)
    xb = model.sample(visit_b, visit_b, b)
    assert xa.sum() == 0 and xb.sum() > 0
    np.testing.assert_array_equal(a.random(8), b.random(8))
    # rows whose cell agrees get the same counts
    mixed = visit_b.copy()
    mixed[::2] = False
    xm = model.sample(mixed, mixed, np.random.default_rng(7))
    xb2 = model.sample(visit_b, visit_b, np.random.default_rng(7))
    np.testing.assert_array_equal(xm[1::2], xb2[1::2])


def test_new_means_replace_the_cached_cdfs() -> None:
    model = ActivityModel(MEANS.copy())
    visit = np.ones(20_000, bool)
    low = model.sample(visit, visit, np.random.default_rng(0)).mean(axis=0)
    model.means = MEANS * 3.0
    high = model.sample(visit, visit, np.random.default_rng(0)).mean(axis=0)
    assert high[0] > 2.5 * low[0]
