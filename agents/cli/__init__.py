"""The ``nudgegym`` command line.

Each ``cmd_*`` module registers its own commands on the shared typer app.
"""

from __future__ import annotations

import sys

# Command modules register themselves on import.
from agents.cli import (  # noqa: F401,E402
    cmd_calibrate,
    cmd_data,
    cmd_env,
    cmd_export,
    cmd_features,
    cmd_forecast,
    cmd_generate,
    cmd_import,
    cmd_ope,
    cmd_policy,
    cmd_predictor,
    cmd_predictor_real,
    cmd_quickstart,
    cmd_room,
    cmd_select,
    cmd_sweep,
    cmd_tune,
)
from agents.cli._app import app, bench_app, run_main

__all__ = ["app", "bench_app", "main", "run_main"]


def main() -> None:
    """Console entry point."""
    sys.exit(run_main())
