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
