"""Run independent jobs in this process, in a local process pool, or as Ray tasks.

One interface, :class:`Executor`: ``imap(fn, items)`` yields ``(index, result)`` as jobs finish
(in any order) and ``map`` returns the results in input order. ``fn`` must be a module-level
function and each item picklable; every job runs single-threaded (``OMP_NUM_THREADS=1`` and one
torch thread in the workers; the serial executor sets torch to one thread for the job's
duration), so a job's result does not depend on where it ran.

- :class:`SerialExecutor`: one job after the other, in this process.
- :class:`LocalExecutor`: a ``concurrent.futures`` process pool with the ``spawn`` start method
  (no forked torch or DuckDB state), ``workers`` processes.
- :class:`RayExecutor`: each job a Ray task with ``num_cpus=1``. ``address=None`` starts a local
  Ray with ``workers`` CPUs; ``"auto"`` or ``"HOST:PORT"`` joins a running cluster. Ray is an
  optional extra (``pip install 'nudgegym[ray]'``), imported only here and only when used.

The executors live in the lowest layer so that the panel builder can scale out with them; the
sweep in :mod:`agents.sweep` uses the same ones.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from predictors.errors import ConfigError

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "SerialExecutor",
           "make_executor", "map_ordered", "single_threaded"]

#: Names accepted by :func:`make_executor` (and ``--executor``).
EXECUTORS = ("serial", "local", "ray")

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class Executor(Protocol):
    """Runs ``fn(item)`` for each item; see the module docstring."""

    name: str
    workers: int

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(items[index]))`` as each job finishes."""
        ...

    def close(self) -> None:
        """Release the workers (idempotent)."""
        ...


def map_ordered(executor: Executor, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(x) for x in items]`` through ``executor`` (results in input order)."""
    items = list(items)
    out: list[Any] = [None] * len(items)
    for i, r in executor.imap(fn, items):
        out[i] = r
    return out


def single_threaded(fn: Callable[[Any], Any], item: Any) -> Any:
    """Call ``fn(item)`` with torch, when it is loaded, on one intra-op thread.

    Torch is not imported here (the data jobs do not need it); jobs that import torch
    themselves set its threads (the sweep's jobs do), and the pool and Ray workers start with
    ``OMP_NUM_THREADS=1``, which torch takes as its default.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return fn(item)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(item)
    finally:
        torch.set_num_threads(old)


def _init_worker() -> None:
    """Process-pool initializer: one thread for OpenMP/BLAS (and torch, when imported)."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def _call(args: tuple[Callable[[Any], Any], Any]) -> Any:
    fn, item = args
    return single_threaded(fn, item)


@dataclass
class SerialExecutor:
    """Jobs one after the other in this process."""

    name: str = "serial"
    workers: int = 1

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            yield i, single_threaded(fn, item)

    def close(self) -> None:
        pass


class LocalExecutor:
    """A pool of ``workers`` spawned processes on this machine."""

    name = "local"

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ConfigError(f"`workers` must be >= 1; got {workers}")
        self.workers = workers
        self._pool: Any = None

    def _ensure(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # The pool spawns its processes on the first submit; they must inherit these
            # before they import numpy or torch, so they stay set until close().
            self._saved = {v: os.environ.get(v) for v in _THREAD_VARS}
            os.environ.update({v: "1" for v in _THREAD_VARS})
            self._pool = ProcessPoolExecutor(self.workers, mp.get_context("spawn"),
                                             initializer=_init_worker)
        return self._pool

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        from concurrent.futures import as_completed

        pool = self._ensure()
        futures = {pool.submit(_call, (fn, item)): i for i, item in enumerate(items)}
        try:
            for f in as_completed(futures):
                yield futures[f], f.result()
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            for v, old in self._saved.items():
                if old is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = old


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'nudgegym[ray]'") from None
    return ray


class RayExecutor:
    """Each job a Ray task (``num_cpus=1``); a local Ray or a running cluster."""

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        if workers < 1:
            raise ConfigError(f"`workers` must be >= 1; got {workers}")
        self.workers, self.address = workers, address
        self._ray: Any = None
        self._started = False
        self._remote: Any = None

    def _ensure(self) -> Any:
        if self._ray is None:
            ray = _ray()
            env = {"env_vars": {v: "1" for v in _THREAD_VARS}}
            if not ray.is_initialized():
                kwargs: dict[str, Any] = {"runtime_env": env, "include_dashboard": False,
                                          "log_to_driver": False, "logging_level": "error"}
                if self.address is None:  # a new local Ray, even when a cluster is running
                    kwargs.update(address="local", num_cpus=self.workers)
                else:
                    kwargs["address"] = self.address
                ray.init(**kwargs)
                self._started = True
            self._remote = ray.remote(num_cpus=1, max_retries=0)(_call)
            self._ray = ray
        return self._ray

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        ray = self._ensure()
        refs = {self._remote.remote((fn, item)): i for i, item in enumerate(items)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield refs[ref], ray.get(ref)

    def close(self) -> None:
        if self._ray is not None and self._started:
            self._ray.shutdown()
        self._ray, self._started = None, False


def make_executor(kind: str = "serial", workers: int = 1,
                  address: str | None = None) -> Executor:
    """An executor by name (``serial``, ``local`` or ``ray``).

    Raises:
        ConfigError: Unknown name, ``workers`` < 1, or ``address`` without ``ray``.

    Example:
        >>> ex = make_executor("serial")
        >>> map_ordered(ex, abs, [-1, 2, -3])
        [1, 2, 3]
    """
    if kind not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {list(EXECUTORS)}; got {kind!r}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1; got {workers}")
    if address is not None and kind != "ray":
        raise ConfigError(f"--address joins a Ray cluster: it needs --executor ray; got {kind!r}")
    if kind == "serial":
        return SerialExecutor()
    if kind == "local":
        return LocalExecutor(workers)
    return RayExecutor(workers, address)
