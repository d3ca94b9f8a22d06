"""Atomic file and folder output, and run-folder metadata.

Every artifact is written to a temporary file in the destination folder and renamed into place,
so a crash never leaves a half-written file behind; :func:`staged_folder` does the same for a
whole output folder. Both give their results the permissions of the user's umask (``0644`` /
``0755`` under the usual ``022``), not the ``0600`` / ``0700`` of :mod:`tempfile`, so a serving
process running as another user can read an exported policy. Temporary names carry the writing
process's id; leftovers of a killed process (``.NAME.PID.XXXX.tmp``,
``.NAME.partial-PID-XXXX``) are removed by the next write to the same destination.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from predictors.errors import ConfigError

_VERSIONED = ("nudgegym", "numpy", "pandas", "pyarrow", "duckdb", "torch", "gymnasium",
              "stable-baselines3", "sb3-contrib", "onnx", "onnxruntime")


def current_umask() -> int:
    """The process's umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale(folder: Path, prefix: str) -> list[Path]:
    """Remove ``folder/PREFIX<pid>...`` entries whose writing process no longer runs.

    The temporary names of :func:`atomic_path` and :func:`staged_folder` start with a prefix
    followed by the writer's pid and ``.`` or ``-``; entries of live processes are kept.
    """
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.glob(f"{prefix}*"):
        rest = p.name[len(prefix):]
        digits = rest.split(".", 1)[0].split("-", 1)[0]
        if not digits.isdigit() or _pid_alive(int(digits)):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    The file gets the mode a plain ``open()`` would give it (``0666`` less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{path.name}.")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` looks like an output of nudgegym (a ``config.json``, ``dataset.json``
    or ``manifest.json`` in it), so replacing it cannot delete a user's unrelated files."""
    return any((folder / n).is_file() for n in ("config.json", "dataset.json", "manifest.json"))


def _raise_not_writable(out: Path, option: str, e: OSError) -> None:
    anc = out
    while not anc.exists() and anc.parent != anc:
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise ConfigError(f"{option} {out}: {anc} is a file; expected a folder path") from None
    reason = e.strerror or type(e).__name__
    raise ConfigError(f"{option} {out}: cannot write there ({reason}); expected a folder "
                      "this user can create and write") from None


@contextlib.contextmanager
def staged_folder(out: str | Path, *, option: str = "--out",
                  replace: bool = True) -> Iterator[Path]:
    """Write an output folder all at once: yield an empty sibling folder, rename it onto ``out``.

    On entry the staging folder ``.NAME.partial-PID-XXXX`` is created next to ``out`` (so an
    unwritable ``out`` fails before any long work) and leftovers of killed writers are removed.
    When the block succeeds, the staging folder becomes ``out`` (an existing ``out`` is moved
    aside, then deleted); when it raises, the staging folder is deleted and ``out`` is left as
    it was. Paths written INTO files should name ``out``, not the staging folder.

    Args:
        out: The folder to produce.
        option: Name of the option in error messages.
        replace: Whether an existing non-empty ``out`` may be replaced. Even then it must look
            like a nudgegym output (:func:`is_run_folder`), so a mistyped ``--out .`` cannot
            delete a user's files.

    Raises:
        ConfigError: ``out`` is a file, cannot be created, or holds something not replaceable.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> with staged_folder(root / "run") as tmp:
        ...     _ = (tmp / "result.txt").write_text("ok")
        >>> sorted(p.name for p in root.iterdir())
        ['run']
    """
    out = Path(out)
    check_replaceable(out, option=option, replace=replace)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out.parent, f".{out.name}.partial-")
        remove_stale(out.parent, f".{out.name}.old-")
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-",
                                    dir=out.parent))
    except OSError as e:
        _raise_not_writable(out, option, e)
    os.chmod(tmp, 0o777 & ~current_umask())
    try:
        yield tmp
        if out.is_dir() and any(out.iterdir()):
            if not replace or not is_run_folder(out):
                raise ConfigError(f"{option} {out}: appeared while this command ran; its "
                                  f"result is left in {tmp.name}") from None
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-",
                                        dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if out.is_dir():
                out.rmdir()
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def resumable_folder(out: str | Path, *, resume: bool = False,
                     option: str = "--out") -> Iterator[Path]:
    """The in-place variant of :func:`staged_folder`, for runs that checkpoint into ``out``.

    A long run writes its checkpoints into ``out`` itself, so that after a kill ``resume``
    continues from them. A fresh run moves an existing run folder aside first (restored if the
    run fails, deleted when it succeeds) and deletes ``out`` if it fails with an error; an
    interrupted run (Ctrl-C) keeps ``out`` so that it can be resumed.

    Raises:
        ConfigError: As :func:`staged_folder`; ``resume`` without an existing ``out``.
    """
    out = Path(out)
    if resume:
        if not out.is_dir():
            raise ConfigError(f"{option} {out}: nothing to resume from (no such run folder)")
        yield out
        return
    check_replaceable(out, option=option)
    old = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out.parent, f".{out.name}.old-")
        if out.is_dir() and any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-",
                                        dir=out.parent)) / out.name
            os.replace(out, old)
        out.mkdir(exist_ok=True)
    except OSError as e:
        _raise_not_writable(out, option, e)
    try:
        yield out
    except KeyboardInterrupt:
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if old is not None:
            os.replace(old, out)
            shutil.rmtree(old.parent, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)


def check_replaceable(out: str | Path, *, option: str = "--out", replace: bool = True) -> None:
    """Refuse an ``out`` that is a file, or a non-empty folder that may not be replaced."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {out}: is a file; expected a folder")
    if out.is_dir() and any(out.iterdir()):
        if not replace:
            raise ConfigError(f"{option} {out}: already exists; choose another folder or pass "
                              "--overwrite")
        if not is_run_folder(out):
            raise ConfigError(f"{option} {out}: a folder holding other files (no config.json "
                              "of a nudgegym run); choose a new or empty folder")


def check_out_folder(out: str | Path, *, option: str = "--out") -> None:
    """Fail early when ``out`` could not be produced: for commands (benchmarks) that write their
    optional ``--out`` with :func:`staged_folder` only at the end. Creates nothing."""
    out = Path(out)
    check_replaceable(out, option=option)
    check_file_writable(out / "config.json", option=option)


def check_file_writable(path: str | Path, *, option: str = "--out") -> None:
    """Fail early when the file ``path`` could not be written (a folder, or no writable parent).

    Probes the nearest existing parent folder with a temporary file; creates nothing.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; expected a file path")
    anc = path.parent
    while not anc.exists() and anc.parent != anc:
        anc = anc.parent
    try:
        if not anc.is_dir():
            raise NotADirectoryError(20, "not a folder")
        with tempfile.NamedTemporaryFile(dir=anc, prefix=f".{path.name}.{os.getpid()}.",
                                         suffix=".tmp"):
            pass
    except OSError as e:
        _raise_not_writable(path, option, e)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_parquet(path: str | Path, df: pd.DataFrame) -> Path:
    """Write a DataFrame as Parquet (zstd), atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, compression="zstd")
    return Path(path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def versions() -> dict[str, str]:
    """Versions of Python and the packages an artifact depends on (missing ones omitted)."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def write_run_config(out: str | Path, command: str, options: dict[str, Any],
                     seed: int | None = None) -> Path:
    """Write ``config.json`` of a run folder: command, resolved options, versions, seed, time."""
    cfg = {
        "command": command,
        "options": options,
        "seed": seed,
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
    }
    return write_json(Path(out) / "config.json", cfg)
