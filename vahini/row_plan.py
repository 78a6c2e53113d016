"""One precompiled plan per feature group that checks a FeatureUpdate's values and
encodes them into the stored blob in a single pass: the ingest worker's hot path.

It accepts and rejects exactly what `validate_feature_update` followed by `row_of`
do, with the same reasons and messages: the fast checks here only ever let a value
through that validation accepts, and anything else is handed to validation's own
check, which names the problem (tests/test_row_plan.py runs both paths on the same
events)."""

from __future__ import annotations

import sys
from typing import Any, Callable

from vahini.codecs import feature_blob
from vahini.errors import InvalidEvent, Reason
from vahini.ports.feature_store import FeatureRow
from vahini.registry.loader import FLOAT32_MAX, INT_RANGES
from vahini.registry.model import Feature, FeatureGroup, Registry
from vahini.validation import EventLimits, check_event_time, check_value, identify

_FLOATS = {float}
_new_tuple = tuple.__new__

# feature name -> (bit of the presence bitmap, first slot in the flat pack list,
# slot count (vector dim; 0 for strings), the value check)
_Slot = tuple[int, int, int, Callable[[Any], None]]


def _checker(f: Feature, limits: EventLimits) -> Callable[[Any], None]:
    """A check whose fast path accepts only what validation accepts; anything else
    goes to validation's check, which raises with the reason (or accepts, e.g. an
    int for a float feature)."""
    def slow(v: Any) -> None:
        check_value(f, v, limits)

    if f.type in INT_RANGES:
        lo, hi = INT_RANGES[f.type]

        def check(v: Any) -> None:
            if type(v) is not int or not lo <= v <= hi:
                slow(v)
    elif f.type in ("float", "float32"):
        bound = FLOAT32_MAX if f.type == "float32" else sys.float_info.max  # NaN and inf fail the compare

        def check(v: Any) -> None:
            if type(v) is not float or not -bound <= v <= bound or v != v:
                slow(v)
    elif f.type == "bool":
        def check(v: Any) -> None:
            if type(v) is not bool:
                slow(v)
    elif f.type == "vector":
        dim = f.dim

        def check(v: Any) -> None:
            # float32-finite floats only: a NaN makes the sum unequal to itself; ints and the rest go slow
            if type(v) is not list or len(v) != dim or set(map(type, v)) != _FLOATS:
                slow(v)
            elif not -FLOAT32_MAX <= min(v) <= max(v) <= FLOAT32_MAX or (total := sum(v)) != total:
                slow(v)
    else:  # strings: validation's own check is already one pass
        check = slow
    return check


class GroupPlan:
    def __init__(self, group: FeatureGroup, limits: EventLimits):
        self.group = group
        layout = feature_blob.layout_of(group.features)
        self._layout = layout
        bit = {f.name: 1 << i for i, f in enumerate(group.features)}
        self._slots: dict[str, _Slot] = {}
        defaults: list[Any] = []
        for f in layout.order:
            width = f.dim if f.type == "vector" else 1
            self._slots[f.name] = (bit[f.name], len(defaults) + 1, width, _checker(f, limits))
            defaults.extend(f.default if f.type == "vector" else (f.default,))
        for f in layout.strings:
            self._slots[f.name] = (bit[f.name], -1, 0, _checker(f, limits))
        self._defaults = [b""] + defaults  # slot 0: the presence bitmap
        self._string_defaults = {f.name: f.default for f in layout.strings}

    def encode(self, values: dict[str, Any], event_time_ms: int) -> bytes:
        """The blob of `values`, checked; raises InvalidEvent like validation."""
        flat = self._defaults.copy()
        bits = 0
        strings = None
        slots = self._slots
        for name, value in values.items():
            slot = slots.get(name)
            if slot is None:
                raise InvalidEvent(Reason.UNKNOWN_FEATURE, f"group '{self.group.name}' has no feature '{name}'")
            if value is None:
                continue
            bit, start, width, check = slot
            check(value)
            bits |= bit
            if width == 1:
                flat[start] = value
            elif width:
                flat[start:start + width] = value
            else:
                strings = strings or dict(self._string_defaults)
                strings[name] = value
        flat[0] = bits.to_bytes(self._layout.bitmap_len, "little")
        return feature_blob.pack(self._layout, self.group.version, event_time_ms, flat,
                                 (strings or self._string_defaults).values())


_PLANS: dict[int, tuple[FeatureGroup, EventLimits, GroupPlan]] = {}


def plan_for(group: FeatureGroup, limits: EventLimits) -> GroupPlan:
    """Cached by the group's identity: a registry's groups live until it is replaced, and
    a worker keeps one limits object."""
    entry = _PLANS.get(id(group))
    if entry is not None and entry[0] is group and entry[1] is limits:
        return entry[2]
    if len(_PLANS) > 4096:
        _PLANS.clear()
    plan = GroupPlan(group, limits)
    _PLANS[id(group)] = (group, limits, plan)  # holding `group` keeps its id from being reused
    return plan


def feature_row(event: dict, registry: Registry, now_ms: int, limits: EventLimits = EventLimits()) -> FeatureRow:
    """`row_of(validate_feature_update(event, ...))` in one pass over the values."""
    entity, key, group = identify(event, registry, limits)
    blob = plan_for(group, limits).encode(event["values"], event["event_time_ms"])
    event_time = check_event_time(event["event_time_ms"], now_ms, limits)
    # FeatureRow(...) less the named tuple's Python-level __new__: one per event
    return _new_tuple(FeatureRow, (entity, key, group.name, event_time, blob, group.ttl_s))
