"""Sweeps: policy training as a grid of deterministic (config, seed) jobs, run by an executor.

``nudgegym sweep --config sweep.yaml --out DIR`` (:mod:`agents.cli.cmd_sweep`):
:func:`load_sweep` reads the sweep file, :func:`list_jobs` lists every job before any runs,
:func:`run_sweep` runs the unfinished ones with a :mod:`predictors.executors` executor and
writes ``sweep.json``, ``sweep.md`` and plots.
"""

from agents.sweep.config import SweepConfig, load_sweep
from agents.sweep.jobs import Job, run_job
from agents.sweep.results import crossed_ci, summarise
from agents.sweep.runner import list_jobs, run_sweep

__all__ = ["Job", "SweepConfig", "crossed_ci", "list_jobs", "load_sweep", "run_job",
           "run_sweep", "summarise"]
