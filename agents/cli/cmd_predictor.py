"""``nudgegym train-predictor``, ``eval-predictor``, ``predict``, ``bench predictor``."""

from __future__ import annotations
