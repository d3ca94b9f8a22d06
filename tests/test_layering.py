"""Imports flow predictors -> envs -> agents only; a backwards import fails this test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["predictors", "envs", "agents"]


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_no_backward_imports(layer: str) -> None:
    forbidden = set(LAYERS[LAYERS.index(layer) + 1:])
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"layer {layer} has no modules"
    bad = []
    for f in files:
        hit = _imported_top_levels(f) & forbidden
        if hit:
            bad.append(f"{f.relative_to(ROOT)} imports {sorted(hit)}")
    assert not bad, "backward imports:\n" + "\n".join(bad)


def test_checker_detects_backward_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom agents.cli import app\nimport envs.x as y\n")
    assert _imported_top_levels(f) >= {"agents", "envs"}
