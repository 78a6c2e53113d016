"""Which registry changes keep stored values readable, and what a publish will change.

Stored blobs carry the group version they were written under; readers decode them
with that version's layout and then convert each value to the current type. Only
conversions that lose nothing are allowed: widening int32 -> int and
float32 -> float. Any other type change (narrowing, string <-> number, bool,
vector length) would make stored values wrong or unreadable, so a publish that
makes one is rejected: give the feature a new name instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from vahini.registry.model import Feature, Registry

WIDENINGS = {("int32", "int"), ("float32", "float")}


def describe(f: Feature) -> str:
    return f"vector[{f.dim}]" if f.type == "vector" else f.type


def readable_as(stored: Feature, current: Feature) -> bool:
    """Can a value stored as `stored` be served as `current` without loss?"""
    return (stored.type == current.type and stored.dim == current.dim) or (stored.type, current.type) in WIDENINGS


@dataclass(frozen=True)
class Change:
    """One effect of a publish: kind is added, version, widened, removed or incompatible
    (feature groups), model (a new model version) or retired (a model version dropped).
    Incompatible changes are rejected; removals, widenings and retirements are warned about.
    For model kinds, `group` holds the model's name."""

    kind: str
    group: str
    feature: str | None
    message: str

    @property
    def blocking(self) -> bool:
        return self.kind == "incompatible"

    @property
    def warning(self) -> bool:
        return self.kind in ("removed", "widened", "retired")


def _stored_layouts(old: Registry, group: str) -> list[tuple[int, tuple[Feature, ...]]]:
    layouts = {v: fs for (g, v), fs in old.history.items() if g == group}
    if group in old.groups:
        layouts[old.groups[group].version] = old.groups[group].features
    return sorted(layouts.items())


def _feature_changes(old: Registry, new: Registry, name: str) -> list[Change]:
    group = new.groups[name]
    changes: list[Change] = []
    before = old.groups.get(name)
    if before is not None:
        for f in before.features:
            if group.feature(f.name) is None:
                changes.append(Change("removed", name, f.name, f"feature '{name}.{f.name}' is removed: reads no longer "
                                                    f"return it, and events that still carry it are dead-lettered"))
    for current in group.features:
        incompatible = sorted({(v, describe(s)) for v, fs in _stored_layouts(old, name) for s in fs
                               if s.name == current.name and not readable_as(s, current)})
        if incompatible:
            versions = ", ".join(f"v{v} ({t})" for v, t in incompatible)
            changes.append(Change("incompatible", name, current.name, (
                f"feature '{name}.{current.name}' changes type to {describe(current)}, but values stored under "
                f"{versions} cannot be read as {describe(current)}; only int32 -> int and float32 -> float "
                f"widen safely: give the feature a new name instead")))
        elif before is not None and (was := before.feature(current.name)) and describe(was) != describe(current):
            changes.append(Change("widened", name, current.name, f"feature '{name}.{current.name}' widens from "
                                                      f"{describe(was)} to {describe(current)}"))
    return changes


def changes(old: Registry, new: Registry) -> list[Change]:
    """Everything a publish of `new` over `old` changes for readers and writers."""
    out: list[Change] = []
    for name in sorted(old.groups.keys() - new.groups.keys()):
        out.append(Change("removed", name, None, f"feature group '{name}' is removed: reads of it fail, and events "
                                      f"still in the log for it are dead-lettered"))
    for name in sorted(new.groups.keys() - old.groups.keys()):
        out.append(Change("added", name, None, f"feature group '{name}' is added"))
    for name in sorted(new.groups.keys() & old.groups.keys()):
        before, after = old.groups[name], new.groups[name]
        if before.version != after.version:
            out.append(Change("version", name, None, f"feature group '{name}' goes from version {before.version} "
                                          f"to {after.version}"))
        for f in after.features:
            if before.feature(f.name) is None:
                out.append(Change("added", name, f.name, f"feature '{name}.{f.name}' is added ({describe(f)})"))
    for name in sorted(new.groups):
        out.extend(_feature_changes(old, new, name))
    return out
