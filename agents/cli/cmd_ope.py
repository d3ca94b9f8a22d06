"""``nudgegym ope`` and ``nudgegym bench ope*``: off-policy evaluation."""

from __future__ import annotations
