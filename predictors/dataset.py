"""Reading and writing dataset folders (see :mod:`predictors.contract`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from predictors.contract import DatasetSpec, read_spec
from predictors.io import write_json, write_parquet

TABLES = ("events", "interventions", "users")


@dataclass(frozen=True)
class Dataset:
    """A dataset folder: its spec and the paths of its tables.

    Attributes:
        folder: The dataset folder.
        spec: Parsed ``dataset.json``.
        events_path: ``events.parquet`` or ``events.csv``.
        interventions_path: Path of the interventions table, or ``None``.
        users_path: Path of the users table, or ``None``.
    """

    folder: Path
    spec: DatasetSpec
    events_path: Path
    interventions_path: Path | None = None
    users_path: Path | None = None

    @property
    def truth_folder(self) -> Path | None:
        """``truth/`` of a synthetic dataset, or ``None`` for real data."""
        t = self.folder / "truth"
        return t if t.is_dir() else None


def find_table(folder: str | Path, name: str) -> Path | None:
    """Path of ``name.parquet`` or ``name.csv`` in ``folder`` (Parquet preferred), or None."""
    folder = Path(folder)
    for ext in (".parquet", ".csv"):
        p = folder / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def open_dataset(folder: str | Path) -> Dataset:
    """Locate the files of a dataset folder without validating their contents."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    spec = read_spec(folder)
    events = find_table(folder, "events")
    if events is None:
        raise FileNotFoundError(f"{folder}: no events.parquet or events.csv")
    return Dataset(folder, spec, events, find_table(folder, "interventions"),
                   find_table(folder, "users"))


def write_dataset(
    folder: str | Path,
    spec: DatasetSpec,
    events: pd.DataFrame,
    interventions: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
) -> Path:
    """Write a dataset folder in the contract's Parquet form, each file atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(folder / "events.parquet", events)
    if interventions is not None:
        write_parquet(folder / "interventions.parquet", interventions)
    if users is not None:
        write_parquet(folder / "users.parquet", users)
    write_json(folder / "dataset.json", spec.to_dict())
    return folder
