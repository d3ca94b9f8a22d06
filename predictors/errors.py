"""Error types shared by every layer of nudgegym.

All user-facing errors subclass :class:`NudgeGymError`, so a caller (and the CLI) can catch the
project's own failures without swallowing programming errors.
"""

from __future__ import annotations

from dataclasses import dataclass


class NudgeGymError(Exception):
    """Base class of every error nudgegym raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem found while validating a dataset.

    Attributes:
        file: File name inside the dataset folder (e.g. ``events.csv``).
        row: Row as numbered in the file: for CSV the line number an editor shows (the header
            is line 1, the first data row line 2); for Parquet the 1-based row number.
            ``None`` for file-level problems.
        column: Column name, or ``None`` for row- or file-level problems.
        expected: What the contract expects.
        found: What was found.
        severity: ``"error"`` (the dataset cannot be loaded) or ``"warning"`` (legal but
            suspicious).
        count: How many rows share this problem (the row shown is the first one).
    """

    file: str
    row: int | None
    column: str | None
    expected: str
    found: str
    severity: str = "error"
    count: int = 1

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column '{self.column}'"
        more = f" ({self.count} rows; first shown)" if self.count > 1 else ""
        return f"{self.severity}: {where}: expected {self.expected}; found {self.found}{more}"


class DataValidationError(NudgeGymError, ValueError):
    """A dataset (or one of its files) breaks the data contract.

    Attributes:
        problems: Every problem found, errors first.
    """

    def __init__(self, problems: list[Problem] | Problem, context: str = "") -> None:
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        head = str(errors[0] if errors else self.problems[0]) if self.problems else "invalid data"
        if head.startswith("error: "):  # the exception is the error; its text needs no label
            head = head[len("error: "):]
        more = f" (+{len(errors) - 1} more errors)" if len(errors) > 1 else ""
        prefix = f"{context}: " if context and not head.startswith(context) else ""
        super().__init__(f"{prefix}{head}{more}")


class CheckpointError(NudgeGymError):
    """A checkpoint or exported artifact is missing, corrupted, truncated or mismatched."""


class ConfigError(NudgeGymError, ValueError):
    """An option or configuration value is invalid."""
