"""The ensemble's member draws are seeded and reproducible; the MOPO-style penalty."""

from __future__ import annotations

import numpy as np
import pytest

from envs.rollout import rollout
from envs.shop_env import load_learned_shop
from predictors import build_panel, load_users, open_dataset
from predictors.errors import ConfigError
from predictors.models import BehaviorPredictor, PredictorConfig, PredictorEnsemble


@pytest.fixture(scope="module")
def ensemble_run(tiny_run, tmp_path_factory):
    data, _ = tiny_run
    ds = open_dataset(data)
    panel, users = build_panel(ds), load_users(ds)
    members = [BehaviorPredictor(PredictorConfig(family="gru", epochs=1, hidden=8, device="cpu",
                                                 seed=0, member=m, num_threads=1)).fit(
        panel, ds.spec.action_names, users=users, progress=False) for m in range(2)]
    folder = PredictorEnsemble(members, seed=0).save(tmp_path_factory.mktemp("ens") / "e")
    return data, folder, members, panel


def test_members_share_the_split_and_differ_in_weights(ensemble_run) -> None:
    members = ensemble_run[2]
    assert members[0].split_.equals(members[1].split_)
    w0 = members[0].net_.heads.shared.weight.detach()
    w1 = members[1].net_.heads.shared.weight.detach()
    assert not np.allclose(w0.numpy(), w1.numpy())


def test_member_draws_are_seeded_and_reproducible(ensemble_run) -> None:
    data, folder, members, panel = ensemble_run
    ens = PredictorEnsemble.load(folder)
    state = ens.initial_state(200)
    a = ens.predict_from_state(state, np.random.default_rng(5)).p_visit
    b = ens.predict_from_state(state, np.random.default_rng(5)).p_visit
    c = ens.predict_from_state(state, np.random.default_rng(6)).p_visit
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    each = np.stack([p.p_visit for p in ens.member_predictions(state)])  # (K, n, A)
    hit = (each == a[None]).all(axis=2)  # which member each row came from
    assert hit.any(axis=0).all()
    assert hit.sum(axis=1).min() > 50  # every member is drawn
    shop = load_learned_shop(folder, data, start_users="all", panel=panel)
    r1 = rollout(shop, np.zeros((len(shop.starts), 4), np.int64), 4, seed=3, replicates=2)
    r2 = rollout(shop, np.zeros((len(shop.starts), 4), np.int64), 4, seed=3, replicates=2)
    r3 = rollout(shop, np.zeros((len(shop.starts), 4), np.int64), 4, seed=4, replicates=2)
    assert np.array_equal(r1.reward, r2.reward) and not np.array_equal(r1.visit, r3.visit)


def test_penalty_lowers_the_reward_by_the_disagreement(ensemble_run) -> None:
    data, folder, _, panel = ensemble_run
    plain = load_learned_shop(folder, data, start_users="all", panel=panel)
    pen = load_learned_shop(folder, data, start_users="all", penalty=2.0, panel=panel)
    acts = np.ones((len(plain.starts), 3), np.int64)
    a = rollout(plain, acts, 3, seed=1)
    b = rollout(pen, acts, 3, seed=1)
    assert np.array_equal(a.revenue, b.revenue)  # same draws
    assert (b.reward <= a.reward + 1e-12).all() and (b.reward < a.reward).any()
    with pytest.raises(ValueError, match="penalty"):
        load_learned_shop(folder, data, start_users="all", penalty=-1.0, panel=panel)


def test_ensemble_needs_two_members(ensemble_run) -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        PredictorEnsemble(ensemble_run[2][:1])
