"""Where the public data sets live for tests: the folder ``shared/data`` beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(rel: str) -> Path:
    """``SHARED_DATA / rel``, or skip the calling test when that file is not there."""
    path = SHARED_DATA / rel
    if not path.is_file():
        pytest.skip(f"public data file {rel} not present beside the checkout")
    return path
