"""The data contract: a dataset is a folder with ``dataset.json`` and event tables.

Files of a dataset folder::

    dataset.json                  DatasetSpec (this module)
    events.parquet | events.csv   user_id, timestamp, event_type[, item_id][, revenue]
    interventions.parquet | .csv  user_id, timestamp, action[, propensity]     (optional)
    users.parquet | users.csv     user_id + static features                    (optional)
    truth/                        only in synthetic datasets (see predictors.synthetic)

Revenue is the gross basket value at list price. A coupon's cost is its discount on the basket
when it is redeemed (a purchase in the period it was sent), on top of the per-send ``cost``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from predictors.errors import DataValidationError, Problem

SCHEMA_VERSION = 1
ACTION_KINDS = ("none", "message", "discount")
KNOWN_EVENT_TYPES = ("visit", "view", "cart", "purchase")
#: Event types that the panel counts besides the known ones (others are allowed but ignored).
EXTRA_EVENT_TYPES = ("fav", "unsubscribe")
_PERIOD_RE = re.compile(r"^(\d+)([DWH])$")


@dataclass(frozen=True)
class ActionSpec:
    """One intervention of the action catalog.

    Attributes:
        name: Action name as it appears in ``interventions.action``.
        cost: Cost per send, in the dataset's currency (0 for ``none``).
        kind: ``none``, ``message`` or ``discount``.
        discount_rate: Fraction of the basket given away when a discount is redeemed (0-1).
        channel: Delivery channel (e.g. ``email``, ``push``); ``None`` for ``none``.
    """

    name: str
    cost: float = 0.0
    kind: str = "message"
    discount_rate: float = 0.0
    channel: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"action `name` must be a non-empty string; got {self.name!r}")
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"action `kind` must be one of {ACTION_KINDS}; got {self.kind!r}")
        if not (self.cost >= 0):
            raise ValueError(f"action `cost` must be >= 0; got {self.cost!r} for {self.name!r}")
        if not (0.0 <= self.discount_rate < 1.0):
            raise ValueError(
                f"action `discount_rate` must be in [0, 1); got {self.discount_rate!r} "
                f"for {self.name!r}"
            )


@dataclass(frozen=True)
class DatasetSpec:
    """Contents of ``dataset.json``.

    Attributes:
        actions: The action catalog, in index order (action ``i`` of an env is ``actions[i]``).
        period: Decision period as ``<n>D``, ``<n>W`` or ``<n>H`` (e.g. ``7D``).
        currency: Currency of ``revenue`` and costs.
        source: Where the data comes from.
        licence: Licence / terms of use note.
        origin: ISO timestamp where period 0 starts; ``None`` = the first event's period start.
        observed_until: ISO timestamp where observation ends (exclusive): the last period is
            the one holding the instant before it, even when no event falls in it; ``None`` =
            the last event's period.
        schema_version: Version of this contract.
        has_prices: Whether purchases carry revenue (then a purchase without revenue is an error).
        extra: Free-form metadata kept for the user (importer statistics, generator options).
    """

    actions: tuple[ActionSpec, ...] = ()
    period: str = "7D"
    currency: str = "USD"
    source: str = ""
    licence: str = ""
    origin: str | None = None
    observed_until: str | None = None
    schema_version: int = SCHEMA_VERSION
    has_prices: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _PERIOD_RE.match(self.period):
            raise ValueError(f"`period` must look like '7D', '1W' or '12H'; got {self.period!r}")
        names = [a.name for a in self.actions]
        if len(set(names)) != len(names):
            raise ValueError(f"action names must be unique; got {names}")

    @property
    def action_names(self) -> list[str]:
        """Action names in index order."""
        return [a.name for a in self.actions]

    @property
    def n_actions(self) -> int:
        """Number of actions in the catalog."""
        return len(self.actions)

    @property
    def period_seconds(self) -> int:
        """Length of one decision period in seconds."""
        m = _PERIOD_RE.match(self.period)
        assert m is not None  # checked in __post_init__
        n, unit = int(m.group(1)), m.group(2)
        return n * {"H": 3600, "D": 86400, "W": 7 * 86400}[unit]

    def action_index(self, name: str) -> int:
        """Index of action ``name`` in the catalog."""
        try:
            return self.action_names.index(name)
        except ValueError:
            raise ValueError(f"unknown action {name!r}; catalog is {self.action_names}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["actions"] = [asdict(a) for a in self.actions]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], file: str = "dataset.json") -> DatasetSpec:
        """Build from a parsed ``dataset.json``; raises DataValidationError naming the field."""
        if not isinstance(d, dict):
            raise DataValidationError(Problem(file, None, None, "a JSON object", type(d).__name__))
        known = {"actions", "period", "currency", "source", "licence", "origin",
                 "observed_until", "schema_version", "has_prices", "extra"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataValidationError(
                Problem(file, None, unknown[0], f"only fields {sorted(known)}", f"{unknown}")
            )
        version = d.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise DataValidationError(
                Problem(file, None, "schema_version", str(SCHEMA_VERSION), repr(version))
            )
        raw_actions = d.get("actions", [])
        if not isinstance(raw_actions, list):
            raise DataValidationError(
                Problem(file, None, "actions", "a list", type(raw_actions).__name__)
            )
        actions = []
        for i, a in enumerate(raw_actions):
            try:
                actions.append(ActionSpec(**a))
            except (TypeError, ValueError) as e:
                raise DataValidationError(
                    Problem(file, None, f"actions[{i}]", "a valid action object", str(e))
                ) from None
        kwargs = {k: d[k] for k in known - {"actions"} if k in d}
        try:
            return cls(actions=tuple(actions), **kwargs)
        except (TypeError, ValueError) as e:
            raise DataValidationError(Problem(file, None, None, "a valid spec", str(e))) from None


def read_spec(folder: str | Path) -> DatasetSpec:
    """Read ``dataset.json`` of a dataset folder."""
    path = Path(folder) / "dataset.json"
    if not path.is_file():
        raise DataValidationError(
            Problem("dataset.json", None, None, "a dataset.json file in the dataset folder",
                    f"no such file in {Path(folder)}")
        )
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataValidationError(
            Problem("dataset.json", e.lineno, None, "valid JSON", e.msg), context=str(folder)
        ) from None
    return DatasetSpec.from_dict(d)


def default_catalog() -> tuple[ActionSpec, ...]:
    """The synthetic shop's default catalog: none, email, push, coupon_10, coupon_20."""
    return (
        ActionSpec("none", 0.0, "none"),
        ActionSpec("email", 0.05, "message", channel="email"),
        ActionSpec("push", 0.02, "message", channel="push"),
        ActionSpec("coupon_10", 0.05, "discount", 0.10, channel="email"),
        ActionSpec("coupon_20", 0.05, "discount", 0.20, channel="email"),
    )
