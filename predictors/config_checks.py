"""Field checks for frozen config dataclasses, called from their ``__post_init__``.

Each check reads the named fields of a config and raises :class:`ConfigError` (a
``ValueError``) naming the first bad field and its value, in the form the command line turns
into the matching option (``--n-users`` for ``n_users``)::

    `n_users` must be an integer >= 1; got 0
    `alpha` must be in (0, 1); got 1.5
    `logging` must be one of ('campaign', 'uniform'); got 'often'

Bounds follow the keywords of ``pydantic.Field`` / ``annotated_types``: ``ge`` (>=), ``gt``
(>), ``le`` (<=), ``lt`` (<). ``bool`` is never an integer nor a number here, and NaN fails
every bound.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Config:
    ...     n_users: int = 10
    ...     alpha: float = 0.05
    ...     def __post_init__(self) -> None:
    ...         check_int(self, "n_users", ge=1)
    ...         check_number(self, "alpha", gt=0, lt=1)
    >>> Config(n_users=0)
    Traceback (most recent call last):
    ...
    predictors.errors.ConfigError: `n_users` must be an integer >= 1; got 0
"""

from __future__ import annotations

from collections.abc import Collection
from numbers import Integral, Real
from typing import Any

from predictors.errors import ConfigError

__all__ = ["check_choice", "check_int", "check_number"]


def _bounds(ge: float | None, gt: float | None, le: float | None, lt: float | None) -> str:
    """``>= 1``, ``<= 6``, or ``in [0, 1)`` when bounded on both sides."""
    low = (ge, "[", ">=") if ge is not None else (gt, "(", ">") if gt is not None else None
    high = (le, "]", "<=") if le is not None else (lt, ")", "<") if lt is not None else None
    if low and high:
        return f"in {low[1]}{low[0]:g}, {high[0]:g}{high[1]}"
    if low or high:
        bound, _, op = low or high
        return f"{op} {bound:g}"
    return ""


def _within(v: float, ge: float | None, gt: float | None, le: float | None,
            lt: float | None) -> bool:
    return ((ge is None or v >= ge) and (gt is None or v > gt)
            and (le is None or v <= le) and (lt is None or v < lt)) and v == v  # NaN fails


def _check(config: Any, names: tuple[str, ...], kind: type, what: str, ge: float | None,
           gt: float | None, le: float | None, lt: float | None, optional: bool) -> None:
    if not names:
        raise TypeError("name at least one field to check")
    rule = " ".join(p for p in (what, _bounds(ge, gt, le, lt)) if p)
    for name in names:
        v = getattr(config, name)
        if v is None and optional:
            continue
        if isinstance(v, bool) or not isinstance(v, kind) or not _within(v, ge, gt, le, lt):
            raise ConfigError(f"`{name}` must be {rule}{' or None' if optional else ''}; "
                              f"got {v!r}")


def check_int(config: Any, *names: str, ge: int | None = None, gt: int | None = None,
              le: int | None = None, lt: int | None = None, optional: bool = False) -> None:
    """Fields ``names`` of ``config`` are integers (``int`` or numpy) within the bounds.

    Args:
        config: The config (any object with these attributes).
        names: Field names.
        ge, gt, le, lt: Bounds (>=, >, <=, <); ``None``: unbounded.
        optional: ``None`` is allowed too.

    Raises:
        ConfigError: The first field that is not such an integer, with its value.
    """
    _check(config, names, Integral, "an integer", ge, gt, le, lt, optional)


def check_number(config: Any, *names: str, ge: float | None = None, gt: float | None = None,
                 le: float | None = None, lt: float | None = None,
                 optional: bool = False) -> None:
    """Fields ``names`` of ``config`` are real numbers (int, float or numpy) within the bounds.

    A bounded number's message states only the bounds (``must be > 0``, ``must be in [0,
    1)``); an unbounded one says ``must be a number``.

    Raises:
        ConfigError: The first field that is not such a number, with its value.
    """
    bounded = any(b is not None for b in (ge, gt, le, lt))
    _check(config, names, Real, "" if bounded else "a number", ge, gt, le, lt, optional)


def check_choice(config: Any, name: str, choices: Collection[Any]) -> None:
    """Field ``name`` of ``config`` is one of ``choices``.

    Raises:
        ConfigError: It is not, naming the field, the choices and the value.
    """
    v = getattr(config, name)
    if v not in choices:
        raise ConfigError(f"`{name}` must be one of {tuple(choices)}; got {v!r}")
