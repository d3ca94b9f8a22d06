"""The ``nudgegym`` command line.

Each ``cmd_*`` module registers its own commands on the shared typer app.
"""

from __future__ import annotations

import sys

from agents.cli._app import app, bench_app, run_main

# Command modules register themselves on import.
from agents.cli import cmd_data  # noqa: F401,E402

__all__ = ["app", "bench_app", "main"]


def main() -> None:
    """Console entry point."""
    sys.exit(run_main())
