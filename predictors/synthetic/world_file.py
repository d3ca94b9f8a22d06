"""World files: a :class:`WorldConfig` written as JSON or YAML, validated key by key.

A world file has the schema of the ``world`` entry of ``truth/world.json``
(:meth:`WorldConfig.to_dict`); a whole ``truth/world.json`` is accepted too. Keys left out keep
their defaults, so a file can say only what differs (``fatigue_decay: 0.85``). ``segments`` and
``actions``, when given, replace the whole list; within a segment or action, keys with a default
(``contact_churn``, ``push_opt_in``; ``cost``, ``kind``, ``discount_rate``, ``channel``) may be
left out. Errors name the file and the key path::

    world.yaml: segments[2].share: expected a number >= 0; found 'x'

Presets are files shipped with the package (:data:`PRESETS`, ``worlds/NAME.yaml``; each file's
header says what it is):

* ``default``: the embedded world (:class:`WorldConfig`).
* ``null``: homogeneous users and no delayed effects; the best fixed action is optimal, so no
  policy beats the best rule (the null world of the policy benchmarks, ``nudgegym room``). Sends
  still lift visits and cost money, so policies differ in value.
* ``inert``: sending does nothing; every action gives the same visits, purchases, revenue and
  churn, sends are free and only a coupon's discount separates policies (coupons are worse).
  No candidate truly beats a coupon-free baseline: the selection gate's null world
  (``nudgegym bench ope-accuracy --world inert``; that bench called it ``null`` before).
* ``tired``: the default world with customers who tire faster and recover slower.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import yaml

from predictors.contract import ACTION_KINDS, ActionSpec
from predictors.errors import NudgeGymError
from predictors.synthetic.world import SegmentProfile, WorldConfig

__all__ = ["PRESETS", "WorldFileError", "load_world", "world_from_dict"]

_PRESET_DIR = Path(__file__).parent / "worlds"
#: Preset names -> their file in the package.
PRESETS = {name: _PRESET_DIR / f"{name}.yaml" for name in ("default", "null", "inert", "tired")}

_INF = float("inf")
# key -> (type, low, high, low inclusive, high inclusive); type "number", "int", "str", "str?"
_UNIT = ("number", 0.0, 1.0, True, False)
_NONNEG = ("number", 0.0, _INF, True, True)
_ANY = ("number", -_INF, _INF, True, True)
_WORLD = {
    "trait_noise": _NONNEG, "response_noise": _NONNEG, "habit_decay": _UNIT,
    "habit_visit": _ANY, "habit_buy": _ANY, "habit_churn": _ANY, "fatigue_decay": _UNIT,
    "fatigue_damping": _NONNEG,
    "fatigue_churn": _ANY, "unsub_logit": _ANY, "fatigue_unsub": _ANY,
    "conditioning_decay": _UNIT, "conditioning_penalty": _ANY, "coupon_visit": _ANY,
    "coupon_habituation": _NONNEG, "burn_in": ("int", 0, _INF, True, True),
}
_SEGMENT = {
    "name": ("str",), "share": _NONNEG, "visit_logit": _ANY, "buy_logit": _ANY,
    "basket_mu": _ANY, "basket_sigma": ("number", 0.0, _INF, False, True),
    "email_response": _ANY, "push_response": _ANY, "coupon_sensitivity": _NONNEG,
    "fatigue_sensitivity": _NONNEG, "churn_logit": _ANY, "contact_churn": _NONNEG,
    "push_opt_in": ("number", 0.0, 1.0, True, True),
}
_ACTION = {"name": ("str",), "cost": _NONNEG, "kind": ("str",), "discount_rate": _UNIT,
           "channel": ("str?",)}


class WorldFileError(NudgeGymError, ValueError):
    """A world file or preset is unreadable or breaks the schema."""


def _expected(spec: tuple) -> str:
    kind = spec[0]
    if kind == "str":
        return "a string"
    if kind == "str?":
        return "a string or null"
    _, lo, hi, lo_in, hi_in = spec
    what = "a number" if kind == "number" else "an integer"
    parts = []
    if lo > -_INF:
        parts.append(f"{'>=' if lo_in else '>'} {lo:g}")
    if hi < _INF:
        parts.append(f"{'<=' if hi_in else '<'} {hi:g}")
    return what + (" " + " and ".join(parts) if parts else "")


def _check_value(value: Any, spec: tuple, where: str) -> Any:
    kind = spec[0]
    if kind in ("str", "str?"):
        if (value is None and kind == "str?") or (isinstance(value, str) and value):
            return value
        raise WorldFileError(f"{where}: expected {_expected(spec)}; found {value!r}")
    ok_type = (isinstance(value, int) if kind == "int" else isinstance(value, (int, float)))
    if isinstance(value, bool) or not ok_type:
        raise WorldFileError(f"{where}: expected {_expected(spec)}; found {value!r}")
    _, lo, hi, lo_in, hi_in = spec
    above = value >= lo if lo_in else value > lo
    below = value <= hi if hi_in else value < hi
    if not (above and below):  # also rejects NaN
        raise WorldFileError(f"{where}: expected {_expected(spec)}; found {value!r}")
    return float(value) if kind == "number" else value


def _check_mapping(raw: Any, schema: dict, cls: type, where: str) -> dict:
    """Validate a mapping against ``schema``; required = ``cls`` fields without a default."""
    if not isinstance(raw, dict):
        raise WorldFileError(f"{where}: expected a mapping of keys; found {raw!r}")
    unknown = sorted(str(k) for k in raw if k not in schema)
    if unknown:
        raise WorldFileError(f"{where}: unknown key {unknown[0]!r}; expected keys among "
                             f"{sorted(schema)}")
    out = {k: _check_value(v, schema[k], f"{where}.{k}") for k, v in raw.items()}
    required = [f.name for f in fields(cls) if f.name in schema
                and f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in raw]
    if missing:
        raise WorldFileError(f"{where}: missing key {missing[0]!r}")
    return out


def _check_list(raw: Any, schema: dict, cls: type, where: str) -> list[dict]:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise WorldFileError(f"{where}: expected a non-empty list; found {raw!r}")
    return [_check_mapping(item, schema, cls, f"{where}[{i}]") for i, item in enumerate(raw)]


def world_from_dict(raw: Any, source: str = "world") -> WorldConfig:
    """A validated :class:`WorldConfig` from a parsed world file (``source`` names it in errors).

    Raises:
        WorldFileError: Unknown key, wrong type, out-of-range value or an inconsistent world.

    Example:
        >>> world_from_dict({"fatigue_decay": 0.85}).fatigue_decay
        0.85
    """
    pre = f"{source}: "
    if isinstance(raw, dict) and isinstance(raw.get("world"), dict):
        raw = raw["world"]  # a whole truth/world.json
    if not isinstance(raw, dict):
        raise WorldFileError(f"{pre}expected a mapping of world keys; found {type(raw).__name__}")
    schema = {**_WORLD, "segments": None, "actions": None}
    unknown = sorted(str(k) for k in raw if k not in schema)
    if unknown:
        raise WorldFileError(f"{pre}unknown key {unknown[0]!r}; expected keys among "
                             f"{sorted(schema)}")
    kwargs: dict[str, Any] = {k: _check_value(v, _WORLD[k], pre + k)
                              for k, v in raw.items() if k in _WORLD}
    if "segments" in raw:
        segs = _check_list(raw["segments"], _SEGMENT, SegmentProfile, pre + "segments")
        names = [s["name"] for s in segs]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise WorldFileError(f"{pre}segments: name {dup!r} appears twice")
        if sum(s["share"] for s in segs) <= 0:
            raise WorldFileError(f"{pre}segments: expected shares with a positive sum")
        kwargs["segments"] = tuple(SegmentProfile(**s) for s in segs)
    if "actions" in raw:
        acts = _check_list(raw["actions"], _ACTION, ActionSpec, pre + "actions")
        for i, a in enumerate(acts):
            if a.get("kind", "message") not in ACTION_KINDS:
                raise WorldFileError(f"{pre}actions[{i}].kind: expected one of {ACTION_KINDS}; "
                                     f"found {a['kind']!r}")
        if acts[0].get("kind", "message") != "none":
            raise WorldFileError(f"{pre}actions[0].kind: expected 'none' (the first action is "
                                 "doing nothing)")
        kwargs["actions"] = tuple(ActionSpec(**a) for a in acts)
    try:
        return WorldConfig(**kwargs)
    except ValueError as e:
        raise WorldFileError(f"{pre}{e}") from None


def load_world(world: str | Path) -> WorldConfig:
    """The world of a preset name (:data:`PRESETS`) or a ``.json`` / ``.yaml`` / ``.yml`` file.

    Raises:
        WorldFileError: Not a preset nor a readable file, or the content breaks the schema.

    Example:
        >>> len(load_world("null").segments)
        1
    """
    if str(world) in PRESETS:
        path, source = PRESETS[str(world)], f"preset {world}"
    else:
        path, source = Path(world), str(world)
        if not path.is_file():
            raise WorldFileError(f"--world {world}: neither a preset ({', '.join(PRESETS)}) nor "
                                 "an existing file")
    text = path.read_text()
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise WorldFileError(f"{source}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}"
                             f": {str(e).splitlines()[0]}") from None
    return world_from_dict({} if raw is None else raw, source)
