"""``nudgegym import KIND SRC --out DIR``: public data into the data contract."""

from __future__ import annotations
