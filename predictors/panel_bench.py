"""Benchmark of :func:`predictors.panel.build_panel`: random logs and a measured child process.

:func:`write_random_dataset` writes a synthetic dataset folder (random users, timestamps over 13
weekly periods, event types with a funnel-like mix, purchase revenue, and logged interventions
with propensities) with vectorised numpy/pyarrow, in chunks so memory stays bounded.
:func:`run_panel_job` builds the panel in a subprocess, so the peak RSS measured through
``getrusage(RUSAGE_CHILDREN)`` is the panel job's own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from predictors.contract import DatasetSpec, default_catalog
from predictors.errors import NudgeGymError
from predictors.io import write_json

EVENT_TYPES = ("visit", "view", "cart", "purchase", "fav", "unsubscribe")
EVENT_MIX = (0.30, 0.50, 0.10, 0.05, 0.045, 0.005)
_START_US = 1_704_067_200 * 1_000_000  # 2024-01-01T00:00:00Z
_DAYS = 91
_CHUNK = 5_000_000

_CHILD = """
import json, resource, sys, time
from predictors.panel import build_panel
folder, memory_limit, threads, validate = sys.argv[1:5]
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
panel = build_panel(folder, memory_limit=memory_limit,
                    threads=None if threads == "0" else int(threads), validate=validate == "1")
seconds = time.perf_counter() - t0
print("PANEL_BENCH " + json.dumps({"seconds": seconds, "panel_rows": len(panel),
                  "baseline_rss_mb": baseline,
                  "self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@dataclass(frozen=True)
class PanelBenchResult:
    """Figures of one panel benchmark run.

    Attributes:
        events: Events in the generated log.
        interventions: Logged interventions.
        seconds: Wall time of ``build_panel`` in the child (interpreter start excluded).
        events_per_s: ``events / seconds``.
        peak_rss_mb: Peak resident memory of the child process (MiB).
        baseline_rss_mb: Resident memory of the child after its imports, before the build.
        panel_rows: Rows of the resulting panel.
        memory_limit: DuckDB memory cap used.
        validated: Whether the timed run included validation.
    """

    events: int
    interventions: int
    seconds: float
    events_per_s: float
    peak_rss_mb: float
    baseline_rss_mb: float
    panel_rows: int
    memory_limit: str
    validated: bool


def write_random_dataset(folder: str | Path, n_events: int, *, seed: int,
                         events_per_user: int = 50) -> tuple[Path, int]:
    """Write a random dataset folder with ``n_events`` events (Parquet).

    Args:
        folder: Output folder (created).
        n_events: Number of events.
        seed: Seed of the generator.
        events_per_user: Average events per user (sets the number of users).

    Returns:
        The folder and the number of interventions written.
    """
    if n_events < 1:
        raise ValueError(f"`n_events` must be >= 1; got {n_events}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_users = max(1, n_events // events_per_user)
    schema = pa.schema([("user_id", pa.int64()), ("timestamp", pa.timestamp("us", tz="UTC")),
                        ("event_type", pa.dictionary(pa.int8(), pa.string())),
                        ("item_id", pa.int64()), ("revenue", pa.float64())])
    types = pa.array(EVENT_TYPES)
    purchase = EVENT_TYPES.index("purchase")
    with pq.ParquetWriter(folder / "events.parquet", schema, compression="zstd") as writer:
        for start in range(0, n_events, _CHUNK):
            n = min(_CHUNK, n_events - start)
            kind = rng.choice(len(EVENT_TYPES), size=n, p=EVENT_MIX).astype(np.int8)
            revenue = rng.gamma(2.0, 20.0, size=n)
            table = pa.table({
                "user_id": rng.integers(0, n_users, size=n, dtype=np.int64),
                "timestamp": pa.array(
                    _START_US + rng.integers(0, _DAYS * 86_400_000_000, size=n, dtype=np.int64),
                    pa.timestamp("us", tz="UTC")),
                "event_type": pa.DictionaryArray.from_arrays(kind, types),
                "item_id": rng.integers(0, 100_000, size=n, dtype=np.int64),
                "revenue": pa.array(revenue, mask=kind != purchase),
            }, schema=schema)
            writer.write_table(table, row_group_size=1_000_000)
    catalog = default_catalog()
    weeks = _DAYS // 7
    users, week = np.divmod(np.flatnonzero(rng.random(n_users * weeks) < 0.3), weeks)
    n_iv = len(users)
    iv = pa.table({
        "user_id": users.astype(np.int64),
        "timestamp": pa.array(_START_US + week * 7 * 86_400_000_000
                              + rng.integers(0, 86_400_000_000, size=n_iv),
                              pa.timestamp("us", tz="UTC")),
        "action": pa.array([a.name for a in catalog]).take(
            pa.array(rng.integers(0, len(catalog), size=n_iv))),
        "propensity": np.full(n_iv, 1.0 / len(catalog)),
    })
    pq.write_table(iv, folder / "interventions.parquet", compression="zstd")
    spec = DatasetSpec(actions=catalog, period="7D", source="random benchmark log",
                       extra={"generator": "panel_bench", "seed": seed})
    write_json(folder / "dataset.json", spec.to_dict())
    return folder, n_iv


def run_panel_job(folder: str | Path, *, memory_limit: str = "4GB", threads: int | None = None,
                  validate: bool = False, n_events: int = 0,
                  n_interventions: int = 0) -> PanelBenchResult:
    """Build the panel of ``folder`` in a child process and measure it."""
    cmd = [sys.executable, "-c", _CHILD, str(folder), memory_limit, str(threads or 0),
           "1" if validate else "0"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise NudgeGymError(f"panel job failed (exit {proc.returncode}): {tail}")
    marked = [ln for ln in proc.stdout.splitlines() if ln.startswith("PANEL_BENCH ")]
    if not marked:
        raise NudgeGymError(f"panel job printed no result: {proc.stdout[-300:]!r}")
    out = json.loads(marked[-1].removeprefix("PANEL_BENCH "))
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    seconds = float(out["seconds"]) if out["seconds"] > 0 else wall
    return PanelBenchResult(
        events=n_events, interventions=n_interventions, seconds=seconds,
        events_per_s=n_events / seconds if seconds > 0 else float("nan"),
        peak_rss_mb=rss_mb, baseline_rss_mb=float(out["baseline_rss_mb"]),
        panel_rows=int(out["panel_rows"]), memory_limit=memory_limit,
        validated=validate)
