"""The ``nudgegym`` typer application and its shared error handling.

Command modules (``cmd_*.py``) register their commands on :data:`app` and their benchmarks on
:data:`bench_app`. Errors raised as :class:`predictors.errors.NudgeGymError` (and ``ValueError``,
``FileNotFoundError``) are printed as one line on stderr with exit code 1; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

app = typer.Typer(
    name="nudgegym",
    help="Decide which user gets which intervention, when: simulate, train, evaluate, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: print a table; --out DIR writes DIR/bench.json.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")

_STATE: dict[str, Any] = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    _STATE["debug"] = debug


def debug_enabled() -> bool:
    """Whether ``--debug`` was given."""
    return bool(_STATE["debug"])


def fail(message: str) -> None:
    """Print one error line on stderr and exit with code 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def run_main(argv: list[str] | None = None) -> int:
    """Run the app; turn expected errors into one stderr line and exit code 1."""
    from predictors.errors import NudgeGymError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        # Without standalone mode, typer returns (not raises) the code of a typer.Exit.
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and not isinstance(rc, bool):
            return rc
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except SystemExit as e:  # click may raise it directly
        return int(e.code or 0) if isinstance(e.code, int) else 1
    except (NudgeGymError, ValueError, FileNotFoundError, NotADirectoryError,
            PermissionError, KeyError) as e:
        if debug:
            raise
        msg = str(e) if not isinstance(e, KeyError) else f"missing key {e}"
        typer.echo(f"error: {msg}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as e:
        # Usage errors of the command-line parser (click's, vendored or not, by duck typing).
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return int(e.exit_code)
        if type(e).__name__ == "Abort":
            return 1
        if debug:
            raise
        typer.echo(f"error: {type(e).__name__}: {e} (run with --debug for the traceback)",
                   err=True)
        return 1
    return 0
