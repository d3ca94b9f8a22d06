"""The ``nudgegym`` typer application and its shared error handling.

Command modules (``cmd_*.py``) register their commands on :data:`app` and their benchmarks on
:data:`bench_app`. What every command gets from here, and what a new command should follow:

* **Errors.** Raise :class:`predictors.errors.NudgeGymError` subclasses (``ConfigError`` for an
  option, ``DataValidationError`` for a file) or ``ValueError`` with a message that names the
  file or option and what was expected. :func:`run_main` prints it as ONE line
  ``error: MESSAGE`` on stderr (a message that already starts with ``error:`` is not prefixed
  twice) and returns exit code 1; ``--debug`` shows the traceback instead. A few library
  exceptions that carry no file name (undecodable or empty CSV files) are translated by
  :func:`read_table_file` / :func:`source_errors`; any other exception is reported as an
  internal error. Backticked configuration fields in a message (```n_envs```) are printed as
  the running command's option (``--n-envs``). Usage errors are one line too, exit code 1.
* **Output folders.** Wrap everything a command writes into ``--out DIR`` in
  ``with output_folder(out) as tmp:`` and write into ``tmp`` (record ``out`` in files). The
  folder is staged next to ``out`` and renamed onto it at the end (:func:`predictors.io.
  staged_folder`), so a failed command leaves no ``--out`` behind, and an ``--out`` that cannot
  be written fails before any long work. Call it BEFORE loading data or fitting. A command
  writing one file (``--out FILE``) calls :func:`predictors.io.check_file_writable` first and
  writes with the atomic ``write_*`` helpers. A long run that checkpoints into ``--out`` and
  can ``--resume`` uses ``with resumable_output(out, resume=resume) as run:`` (written in
  place, removed on an error, kept on Ctrl-C). A benchmark whose optional ``--out`` is only
  written at the end calls :func:`predictors.io.check_out_folder` first. Add the command's bad
  inputs to ``tests/agents/bad_inputs.py`` (its test checks the error line and ``--out``).
* **Warnings.** ``warnings.warn`` from library code is printed as one ``warning: ...`` line on
  stderr, each distinct message once per command.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
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


def output_folder(out: Path, *, option: str = "--out", replace: bool = True):
    """The one way a command writes its ``--out`` folder (see the module docstring).

    Returns the context manager of :func:`predictors.io.staged_folder`: it yields the staging
    folder to write into and renames it onto ``out`` when the block succeeds.
    """
    from predictors.io import staged_folder

    return staged_folder(out, option=option, replace=replace)


def resumable_output(out: Path, *, resume: bool = False, option: str = "--out"):
    """:func:`output_folder` for long runs that checkpoint into ``out`` and can ``--resume``
    (:func:`predictors.io.resumable_folder`): written in place, removed on failure."""
    from predictors.io import resumable_folder

    return resumable_folder(out, resume=resume, option=option)


def read_table_file(path: Path, option: str, **kwargs: Any) -> Any:
    """``pandas.read_csv`` (or ``read_parquet`` for ``.parquet``) with errors naming ``path``."""
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"{option} {path}: no such file")
    with source_errors(path, option):
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, **kwargs)


@contextlib.contextmanager
def source_errors(path: Path, option: str) -> Iterator[None]:
    """Re-raise the nameless errors of reading ``path`` (encoding, empty file, CSV syntax,
    Parquet) as one-line errors naming ``option`` and ``path``."""
    import pandas as pd
    import pyarrow as pa

    from predictors.errors import ConfigError

    try:
        yield
    except UnicodeDecodeError as e:
        raise ConfigError(f"{option} {path}: byte {e.object[e.start:e.start + 1]!r} at offset "
                          f"{e.start} is not UTF-8; expected a UTF-8 text file (re-save it as "
                          "UTF-8)") from None
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{option} {path}: the file is empty; expected a header line and "
                          "rows") from None
    except pd.errors.ParserError as e:
        raise ConfigError(f"{option} {path}: not a readable CSV ({_one_line(e)})") from None
    except pa.ArrowException as e:
        raise ConfigError(f"{option} {path}: not a readable Parquet file ({_one_line(e)})") \
            from None


def _one_line(e: BaseException) -> str:
    msg = str(e) if not isinstance(e, KeyError) else f"missing key {e}"
    msg = " ".join(msg.split())
    while msg.lower().startswith("error: "):
        msg = msg[len("error: "):]
    return msg


#: Configuration fields whose command-line option has another name.
_OPTION_ALIASES = {"family": "model"}


def _option_names(argv: list[str], message: str) -> str:
    """Replace backticked configuration field names (```n_envs```) in ``message`` by the
    options of the command being run (``--n-envs``), so the error names what the user typed."""
    import re

    cmd: Any = typer.main.get_command(app)
    words = [a for a in argv if not a.startswith("-")]
    for w in words[:2]:
        sub = getattr(cmd, "commands", {}).get(w)
        if sub is None:
            break
        cmd = sub
    opts = {}
    for param in getattr(cmd, "params", []):
        if getattr(param, "param_type_name", "") == "option" and param.opts:
            opts[param.name] = max(param.opts, key=len)
    for field, name in _OPTION_ALIASES.items():
        if name in opts:
            opts.setdefault(field, opts[name])

    def swap(m: re.Match) -> str:
        return opts.get(m.group(1), m.group(0))

    return re.sub(r"`([a-z_]+)`", swap, message)


class _WarnOnce:
    """``warnings.showwarning`` that prints each distinct message once as ``warning: ...``."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        while text.lower().startswith("warning: "):
            text = text[len("warning: "):]
        if text in self.seen:
            return
        self.seen.add(text)
        typer.echo(f"warning: {text}", err=True)


def fail(message: str) -> None:
    """Print one error line on stderr and exit with code 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def run_main(argv: list[str] | None = None) -> int:
    """Run the app; turn expected errors (usage errors included) into one stderr line and exit
    code 1."""
    import warnings

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    shown = warnings.showwarning
    warnings.showwarning = _WarnOnce()
    try:
        return _run(argv, debug)
    finally:
        warnings.showwarning = shown


def _run(argv: list[str], debug: bool) -> int:
    from predictors.errors import NudgeGymError

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
        typer.echo(f"error: {_option_names(argv, _one_line(e))}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as e:
        # Usage errors of the command-line parser (click's, vendored or not, by duck typing).
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            ctx = getattr(e, "ctx", None)
            sub = ctx.command_path.partition(" ")[2] if ctx is not None else ""
            where = f" (see `nudgegym {sub} --help`)" if ctx is not None else ""
            typer.echo(f"error: {_one_line(Exception(e.format_message()))}{where}", err=True)
            return 1
        if type(e).__name__ == "Abort":
            return 1
        if debug:
            raise
        typer.echo(f"error: internal error ({type(e).__name__}: {_one_line(e)}); please report "
                   "it with the output of --debug", err=True)
        return 1
    return 0
