"""Data commands: generate, import, validate, inspect, quickstart (filled in by the data layer)."""

from __future__ import annotations
