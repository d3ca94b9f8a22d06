"""Reading and writing dataset folders (see :mod:`predictors.contract`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from predictors.contract import DatasetSpec, read_spec
from predictors.errors import DataValidationError, Problem
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
        raise FileNotFoundError(f"{folder}: no such dataset folder; expected a folder with "
                                "dataset.json and an events table")
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
    *,
    validate: bool = True,
) -> Path:
    """Write a dataset folder in the contract's Parquet form, each file atomically.

    The frames' columns are checked before anything is written. With ``validate`` the written
    folder is then validated (:func:`predictors.validate.validate_dataset`); on any error the
    files just written are removed and DataValidationError is raised, so a writer's bug never
    leaves a dataset that fails to load.

    Raises:
        DataValidationError: A required column is missing, or the written dataset is invalid.
    """
    from predictors.validate import REQUIRED, validate_dataset

    tables = {"events": events, "interventions": interventions, "users": users}
    for name, df in tables.items():
        if df is None:
            continue
        required = list(REQUIRED[name])
        if name == "events" and spec.has_prices:
            required.append("revenue")
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise DataValidationError(Problem(
                f"{name}.parquet", None, missing[0], f"columns {required}",
                f"columns {list(map(str, df.columns))}"), context=f"write_dataset({name})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in tables.items():
        if df is not None:
            written.append(write_parquet(folder / f"{name}.parquet", df))
    written.append(write_json(folder / "dataset.json", spec.to_dict()))
    if validate:
        errors = [p for p in validate_dataset(folder) if p.severity == "error"]
        if errors:
            for path in written:
                path.unlink(missing_ok=True)
            raise DataValidationError(errors, context=f"write_dataset produced in {folder}")
    return folder
