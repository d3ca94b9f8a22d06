"""``nudgegym generate``: the synthetic shop (and its benchmark)."""

from __future__ import annotations
