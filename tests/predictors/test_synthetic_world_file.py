"""World files and presets: schema errors name the key; presets and truth files round-trip."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.cli import run_main
from predictors.synthetic import (
    PRESETS,
    GenerateConfig,
    World,
    WorldConfig,
    WorldFileError,
    generate,
    load_world,
    read_world,
    sample_start_states,
    world_from_dict,
)


def _segment(**over) -> dict:
    seg = asdict(WorldConfig().segments[0])
    seg.update(over)
    return seg


BAD = [
    ({"fatigue_decy": 0.5}, r"world\.yaml: unknown key 'fatigue_decy'"),
    ({"fatigue_decay": 1.0}, r"world\.yaml: fatigue_decay: expected a number >= 0 and < 1; "
                             r"found 1\.0"),
    ({"fatigue_decay": "fast"}, r"fatigue_decay: expected a number .*; found 'fast'"),
    ({"burn_in": 2.5}, r"burn_in: expected an integer >= 0; found 2\.5"),
    ({"burn_in": True}, r"burn_in: expected an integer"),
    ({"segments": [_segment(), _segment(name="b"), _segment(name="c", share="x")]},
     r"world\.yaml: segments\[2\]\.share: expected a number >= 0; found 'x'"),
    ({"segments": [_segment(push_opt_in=1.5)]},
     r"segments\[0\]\.push_opt_in: expected a number >= 0 and <= 1; found 1\.5"),
    ({"segments": [_segment(colour="red")]}, r"segments\[0\]: unknown key 'colour'"),
    ({"segments": [{"name": "a", "share": 1.0}]}, r"segments\[0\]: missing key 'visit_logit'"),
    ({"segments": [_segment(), _segment()]}, r"segments: name 'loyal' appears twice"),
    ({"segments": [_segment(share=0.0)]}, r"segments: expected shares with a positive sum"),
    ({"segments": []}, r"segments: expected a non-empty list"),
    ({"segments": [_segment(basket_sigma=0)]}, r"segments\[0\]\.basket_sigma: expected a "
                                                r"number > 0"),
    ({"actions": [{"name": "email", "kind": "message"}]}, r"actions\[0\]\.kind: expected 'none'"),
    ({"actions": [{"name": "none", "kind": "none"}, {"name": "x", "kind": "gift"}]},
     r"actions\[1\]\.kind: expected one of"),
    ({"actions": [{"name": "none", "kind": "none"}, {"name": "x", "cost": -1}]},
     r"actions\[1\]\.cost: expected a number >= 0; found -1"),
    ([1, 2], r"world\.yaml: expected a mapping"),
]


@pytest.mark.parametrize(("raw", "match"), BAD)
def test_schema_errors_name_the_key(raw, match) -> None:
    with pytest.raises(WorldFileError, match=match):
        world_from_dict(raw, "world.yaml")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_load_and_round_trip(preset: str, tmp_path: Path) -> None:
    cfg = load_world(preset)
    assert world_from_dict(cfg.to_dict()) == cfg
    for name, dump in (("w.json", json.dumps), ("w.yaml", yaml.safe_dump)):
        (tmp_path / name).write_text(dump(cfg.to_dict()))
        assert load_world(tmp_path / name) == cfg


def test_default_preset_is_the_embedded_world_and_others_differ() -> None:
    assert load_world("default") == WorldConfig()
    assert load_world("tired").fatigue_decay > WorldConfig().fatigue_decay
    assert load_world("null") != WorldConfig()
    assert load_world("inert") not in (WorldConfig(), load_world("null"))


def test_partial_file_keeps_defaults(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text("# customers tire faster\nfatigue_decay: 0.85\n")
    cfg = load_world(tmp_path / "w.yaml")
    assert cfg.fatigue_decay == 0.85 and cfg.segments == WorldConfig().segments


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(WorldFileError, match="neither a preset"):
        load_world(tmp_path / "missing.yaml")
    (tmp_path / "w.json").write_text("{not json")
    with pytest.raises(WorldFileError, match=r"w\.json: not valid JSON"):
        load_world(tmp_path / "w.json")


def test_null_world_has_one_best_action_for_everyone() -> None:
    world = World(load_world("null"))
    start = sample_start_states(world, 500, seed=0)
    alive = ~start.state.churned
    best = world.expected_reward_table(start.state)[alive].argmax(axis=1)
    assert alive.sum() > 100 and len(np.unique(best)) == 1


def _stepped(world: World, n: int, actions: np.ndarray | None, seed: int = 0):
    """``n`` users stepped 6 periods (same random numbers for any actions; None: random)."""
    rng = np.random.default_rng(seed)
    state = world.sample_users(n, rng)
    pick = np.random.default_rng(seed + 1)
    for _ in range(6):
        act = pick.integers(world.n_actions, size=n) if actions is None else actions
        world.step(state, act, rng)
    return state


# null: nothing a send does lasts; inert: a send does nothing, except that unsubscribing
# (which still happens) stops later coupons, and with them the discount they give away
@pytest.mark.parametrize(("preset", "unaffected"), [("null", "expected_reward"),
                                                    ("inert", "expected_revenue")])
def test_null_presets_have_homogeneous_users_and_no_delayed_effects(preset: str,
                                                                    unaffected: str) -> None:
    world = World(load_world(preset))
    assert len(world.config.segments) == 1
    fresh = world.sample_users(300, np.random.default_rng(0))
    for a in range(world.n_actions):  # the same person everywhere (but the basket's size)
        out = world.expected_outcomes(fresh, np.full(300, a))
        assert np.ptp(out.p_visit) == 0 and np.ptp(out.p_purchase) == 0
    contacted = _stepped(world, 300, None)
    never = _stepped(world, 300, np.zeros(300, dtype=int))
    assert contacted.fatigue.max() > 0 and never.fatigue.max() == 0  # histories differ ...
    # ... but what happens next does not depend on them (and churn draws are shared)
    np.testing.assert_array_equal(contacted.churned, never.churned)
    assert (~contacted.churned).sum() > 200
    for a in range(world.n_actions):
        out = world.expected_outcomes(contacted, np.full(300, a))
        ref = world.expected_outcomes(never, np.full(300, a))
        np.testing.assert_array_equal(getattr(out, unaffected), getattr(ref, unaffected))
        np.testing.assert_array_equal(out.p_churn, ref.p_churn)


def test_inert_preset_actions_change_nothing_but_the_discount() -> None:
    world = World(load_world("inert"))
    state = _stepped(world, 400, None)  # fatigue, conditioning, unsubscribes vary
    outs = [world.expected_outcomes(state, np.full(state.n, a)) for a in range(world.n_actions)]
    for out in outs:
        for name in ("p_visit", "p_purchase", "expected_revenue", "p_churn"):
            np.testing.assert_array_equal(getattr(out, name), getattr(outs[0], name))
        assert (out.cost == 0).all()
        np.testing.assert_allclose(out.expected_reward,
                                   out.expected_revenue - out.expected_discount)
    coupons = [i for i, a in enumerate(world.config.actions) if a.kind == "discount"]
    reached = ~state.churned & ~state.email_unsub
    assert coupons and all((outs[i].expected_discount[reached] > 0).all() for i in coupons)
    assert all((outs[i].expected_discount == 0).all() for i in range(world.n_actions)
               if i not in coupons)


def test_null_preset_sends_still_matter() -> None:
    """Unlike ``inert``, ``null`` keeps the sends' effects: the best rule is not `never`."""
    world = World(load_world("null"))
    state = world.sample_users(200, np.random.default_rng(0))
    table = world.expected_reward_table(state)
    assert np.ptp(table.mean(axis=0)) > 0.1 and table.mean(axis=0).argmax() != 0


def test_generated_truth_reads_back_and_cli_uses_the_world(tmp_path: Path) -> None:
    folder = generate(GenerateConfig(n_users=30, n_periods=2, world=load_world("tired")),
                      tmp_path / "d")
    assert read_world(folder).config == load_world("tired")
    assert load_world(folder / "truth" / "world.json") == load_world("tired")
    (tmp_path / "bad.yaml").write_text("segments: [{name: a, share: x}]\n")
    assert run_main(["generate", "--out", str(tmp_path / "e"), "--users", "5", "--periods",
                     "1", "--world", str(tmp_path / "bad.yaml")]) == 1
    assert run_main(["generate", "--out", str(tmp_path / "n"), "--users", "20", "--periods",
                     "2", "--world", "null"]) == 0
    assert len(read_world(tmp_path / "n").config.segments) == 1
