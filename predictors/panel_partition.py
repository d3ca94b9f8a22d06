"""The panel built in parts: users hashed into partitions, one DuckDB job per partition.

:func:`build_panel_partitioned` writes the events as a Parquet dataset partitioned by a hash of
``user_id`` (``events/part=K/``, Hive layout; the interventions likewise, each partition in file
order), builds the panel of each partition with the same query as :func:`build_panel` (origin
and last period those of the whole dataset) through an executor
(:mod:`predictors.executors`: serial, a local process pool or Ray), and concatenates the parts
in ``user_id`` order. The result equals ``build_panel`` of the whole dataset. With Ray on
several machines, ``workdir`` must be a folder every node can read.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from predictors.dataset import Dataset, open_dataset
from predictors.errors import ConfigError
from predictors.executors import Executor, SerialExecutor, map_ordered
from predictors.panel import _empty, _panel, register_views
from predictors.tables import connect, id_sql, lit, origin_timestamp
from predictors.validate import check_dataset

__all__ = ["PanelPart", "build_panel_partitioned", "partition_dataset"]


@dataclass(frozen=True)
class PanelPart:
    """One partition's panel job (picklable)."""

    dataset: Dataset
    bounds: tuple[int, int]
    memory_limit: str
    threads: int


def partition_dataset(ds: Dataset, out: Path, partitions: int, *, memory_limit: str = "4GB",
                      threads: int | None = None) -> tuple[list[Dataset], tuple[int, int] | None,
                                                           str]:
    """Write ``out/events/part=K/`` (and ``out/interventions/part=K/``) for K < ``partitions``.

    Returns:
        (one dataset per partition, the whole's (first, last) epoch-us timestamps or ``None``
        when it has no rows, DuckDB type of ``user_id``).
    """
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nudgegym-partition-", dir=out) as tmp:
        con = connect(memory_limit, threads, tmp)
        try:
            uid, has_iv, times = register_views(con, ds)
            t_min, t_max = con.execute(f"SELECT min(t), max(t) FROM ({times})").fetchone()
            origin = origin_timestamp(ds.spec)
            if t_min is not None and origin is not None:
                o_us = int(origin.value // 1000)
                early = con.execute(f"SELECT count(*) FROM ({times}) WHERE t < {o_us}"
                                    ).fetchone()[0]
                if early:
                    warnings.warn(f"{ds.folder}: {early} events/interventions before origin "
                                  f"{ds.spec.origin} are left out of the panel", UserWarning,
                                  stacklevel=3)
            key = f"(hash({id_sql('user_id', uid)}) % {partitions})::INTEGER"
            conv = f"* REPLACE ({id_sql('user_id', uid)} AS user_id)"
            ev_dir = out / "events"
            con.execute(f"COPY (SELECT {conv}, {key} AS part FROM events) TO "
                        f"{lit(str(ev_dir))} (FORMAT parquet, PARTITION_BY (part), "
                        "OVERWRITE_OR_IGNORE true)")
            for k in range(partitions):  # a partition without events gets an empty file
                d = ev_dir / f"part={k}"
                if not d.is_dir():
                    d.mkdir(parents=True)
                    con.execute(f"COPY (SELECT {conv}, 0 AS part FROM events WHERE false) TO "
                                f"{lit(str(d / 'empty.parquet'))} (FORMAT parquet)")
            iv_dir = out / "interventions"
            if has_iv:
                con.execute(f"CREATE TEMP TABLE ivp AS SELECT {conv}, {key} AS part, "
                            "row_number() OVER () AS _rn FROM interventions")
                for k in range(partitions):
                    (iv_dir / f"part={k}").mkdir(parents=True, exist_ok=True)
                    con.execute(f"COPY (SELECT * EXCLUDE (part, _rn) FROM ivp WHERE part = {k} "
                                f"ORDER BY _rn) TO "
                                f"{lit(str(iv_dir / f'part={k}' / 'data.parquet'))} "
                                "(FORMAT parquet)")
        finally:
            con.close()
    parts = [Dataset(out / f"part-{k}", ds.spec, ev_dir / f"part={k}" / "*.parquet",
                     iv_dir / f"part={k}" / "data.parquet" if has_iv else None, None)
             for k in range(partitions)]
    return parts, (None if t_min is None else (int(t_min), int(t_max))), uid


def _part_panel(job: PanelPart) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the whole dataset's warnings are given once
        return _panel(job.dataset, job.memory_limit, job.threads, job.bounds)


def build_panel_partitioned(dataset_or_folder: Dataset | str | Path, *, partitions: int = 8,
                            executor: Executor | None = None, memory_limit: str = "2GB",
                            threads: int = 1, validate: bool = True,
                            workdir: str | Path | None = None) -> pd.DataFrame:
    """:func:`predictors.build_panel`, one job per partition of users (module docstring).

    Args:
        dataset_or_folder: A :class:`Dataset` or a dataset folder.
        partitions: Number of user partitions (>= 1).
        executor: Runs the partition jobs (default: serial in this process).
        memory_limit: DuckDB memory cap of each job (and of the partitioning).
        threads: DuckDB threads of each job.
        validate: Validate the dataset first (warnings as :func:`build_panel` gives them).
        workdir: Folder for the partitioned files (default: a temporary folder, removed).

    Example:
        >>> try:
        ...     build_panel_partitioned("x", partitions=0)
        ... except ConfigError as e:
        ...     print(e)
        `partitions` must be >= 1; got 0
    """
    if partitions < 1:
        raise ConfigError(f"`partitions` must be >= 1; got {partitions}")
    folder = (dataset_or_folder.folder if isinstance(dataset_or_folder, Dataset)
              else Path(dataset_or_folder))
    if validate:
        for p in check_dataset(folder, memory_limit=memory_limit):
            warnings.warn(str(p), UserWarning, stacklevel=2)
    ds = (dataset_or_folder if isinstance(dataset_or_folder, Dataset)
          else open_dataset(folder))
    executor = executor or SerialExecutor()
    with tempfile.TemporaryDirectory(prefix="nudgegym-parts-",
                                     dir=None if workdir is None else str(workdir)) as tmp:
        parts, bounds, uid = partition_dataset(ds, Path(tmp), partitions,
                                               memory_limit=memory_limit)
        if bounds is None:
            return _empty(uid)
        jobs = [PanelPart(p, bounds, memory_limit, threads) for p in parts]
        frames = [f for f in map_ordered(executor, _part_panel, jobs) if len(f)]
    if not frames:
        return _empty(uid)
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values("user_id", kind="stable", ignore_index=True)
    return df
