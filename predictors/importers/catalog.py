"""A shop's action catalog file: which campaigns of a send log are which catalog action.

The file is YAML (or JSON, a subset of YAML)::

    actions:
      - name: email               # catalog action (the name policies and reports use)
        kind: message             # none, message or discount
        channel: email            # email, push, ... (omit for kind none)
        cost: 0.05                # cost per send, in the dataset's currency
        campaigns: [newsletter, weekly_digest]   # campaign values of the send log
      - name: coupon_10
        kind: discount
        channel: email
        cost: 0.05
        discount_rate: 0.10
        campaigns: [spring_10pct]

An action without ``campaigns`` matches the campaign of its own name. ``none`` (kind ``none``,
cost 0) is added first when the file does not list it: it is what a user got in a period
without a send. ``cost`` may be omitted when the send log has a cost column; the action's cost
is then the mean cost of its sends (:func:`resolve_costs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from predictors.contract import ActionSpec
from predictors.errors import ConfigError

_FIELDS = {"name", "kind", "channel", "cost", "discount_rate", "campaigns"}


@dataclass(frozen=True)
class CatalogEntry:
    """One action of a catalog file with the campaign values that map to it.

    Attributes:
        action: The catalog action (cost 0 until resolved when the file gives none).
        campaigns: Campaign values of the send log that mean this action.
        cost_given: Whether the file gives the cost (else :func:`resolve_costs` fills it).
    """

    action: ActionSpec
    campaigns: tuple[str, ...]
    cost_given: bool = True


@dataclass(frozen=True)
class CatalogFile:
    """A parsed catalog file.

    Attributes:
        path: Where it was read from.
        entries: Actions in catalog order (``none`` first).
    """

    path: Path
    entries: tuple[CatalogEntry, ...]

    @property
    def campaign_map(self) -> dict[str, str]:
        """Campaign value -> action name."""
        return {c: e.action.name for e in self.entries for c in e.campaigns}

    @property
    def actions(self) -> tuple[ActionSpec, ...]:
        """The actions in catalog order."""
        return tuple(e.action for e in self.entries)


def read_catalog(path: str | Path) -> CatalogFile:
    """Read and check a catalog file (see the module docstring).

    Raises:
        FileNotFoundError: No such file.
        ConfigError: The file is not valid YAML or breaks the format, naming the action and
            field.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "catalog.yaml")
        >>> _ = open(p, "w").write("actions:\\n  - {name: email, channel: email, cost: 0.05}\\n")
        >>> [a.name for a in read_catalog(p).actions]
        ['none', 'email']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalog file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path.name}: not a readable YAML catalog ({first})") from None
    raw = doc.get("actions") if isinstance(doc, dict) else None
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path.name}: expected a mapping with a non-empty list `actions`; "
                          f"found {type(doc).__name__ if not isinstance(doc, dict) else doc}")
    entries = [_entry(path.name, i, a) for i, a in enumerate(raw)]
    names = [e.action.name for e in entries]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"{path.name}: action name {dup!r} appears twice")
    seen: dict[str, str] = {}
    for e in entries:
        for c in e.campaigns:
            if c in seen:
                raise ConfigError(f"{path.name}: campaign {c!r} maps to both {seen[c]!r} and "
                                  f"{e.action.name!r}")
            seen[c] = e.action.name
    nones = [e for e in entries if e.action.kind == "none"]
    if len(nones) > 1:
        raise ConfigError(f"{path.name}: only one action may have kind 'none'; got "
                          f"{[e.action.name for e in nones]}")
    if nones and nones[0].action.name != "none":
        raise ConfigError(f"{path.name}: the action of kind 'none' must be named 'none'; got "
                          f"{nones[0].action.name!r}")
    if "none" in names and not nones:
        raise ConfigError(f"{path.name}: action 'none' must have kind 'none'")
    if not nones:
        entries.insert(0, CatalogEntry(ActionSpec("none", 0.0, "none"), ()))
    else:
        entries.sort(key=lambda e: e.action.kind != "none")  # none first, others in file order
    if len(entries) < 2:
        raise ConfigError(f"{path.name}: the catalog needs at least one action besides 'none'")
    return CatalogFile(path, tuple(entries))


def _entry(file: str, i: int, a: Any) -> CatalogEntry:
    where = f"{file}: actions[{i}]"
    if not isinstance(a, dict):
        raise ConfigError(f"{where}: expected a mapping with `name`, `kind`, `channel`, "
                          f"`cost`; found {a!r}")
    unknown = sorted(set(map(str, a)) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}; expected only "
                          f"{sorted(_FIELDS)}")
    name = a.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: `name` must be a non-empty text; found {name!r}")
    where = f"{file}: action {name!r}"
    kind = a.get("kind", "none" if name == "none" else "message")
    for key in ("cost", "discount_rate"):
        v = a.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ConfigError(f"{where}: `{key}` must be a number; found {v!r}")
    cost = a.get("cost")
    if cost is None and kind == "none":
        cost = 0.0
    channel = a.get("channel")
    if channel is not None and (not isinstance(channel, str) or not channel.strip()):
        raise ConfigError(f"{where}: `channel` must be a non-empty text; found {channel!r}")
    if kind != "none" and channel is None:
        raise ConfigError(f"{where}: `channel` is needed for kind {kind!r} (e.g. email, push)")
    if kind == "discount" and not a.get("discount_rate"):
        raise ConfigError(f"{where}: kind 'discount' needs `discount_rate` in (0, 1)")
    campaigns = a.get("campaigns", [name] if kind != "none" else [])
    if isinstance(campaigns, (str, int, float)):
        campaigns = [campaigns]
    if not isinstance(campaigns, list) or any(isinstance(c, (dict, list)) for c in campaigns):
        raise ConfigError(f"{where}: `campaigns` must be a list of campaign values; found "
                          f"{campaigns!r}")
    if kind == "none" and campaigns:
        raise ConfigError(f"{where}: kind 'none' cannot have campaigns (a send is an action)")
    try:
        spec = ActionSpec(name.strip(), 0.0 if cost is None else float(cost), kind,
                          float(a.get("discount_rate") or 0.0), channel)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    return CatalogEntry(spec, tuple(str(c).strip() for c in campaigns), cost is not None)


def resolve_costs(catalog: CatalogFile, mean_cost: dict[str, float]) -> tuple[ActionSpec, ...]:
    """Catalog actions with each missing cost taken from the mean cost of the action's sends.

    Args:
        catalog: The parsed catalog file.
        mean_cost: Action name -> mean of the send log's cost column over its sends (empty
            when the log has no cost column).

    Raises:
        ConfigError: An action has no cost in the file and none from the sends.
    """
    out = []
    for e in catalog.entries:
        a = e.action
        if e.cost_given:
            out.append(a)
            continue
        if a.name not in mean_cost:
            raise ConfigError(f"{catalog.path.name}: action {a.name!r} has no `cost`; give one "
                              "or a cost column of the sends (--sends-cost-col)")
        out.append(ActionSpec(a.name, float(mean_cost[a.name]), a.kind, a.discount_rate,
                              a.channel))
    return tuple(out)
