"""Publishing a registry to the config store, and following what is published."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

from vahini.errors import ConfigError, ConfigProblem
from vahini.ports.config_store import ConfigStore
from vahini.registry import revisions
from vahini.registry.compat import Change, changes
from vahini.registry.loader import load_registry_located
from vahini.registry.model_versions import assign_versions
from vahini.registry.model import Registry

REGISTRY_KEY = "registry"


def read_published(store: ConfigStore) -> Registry | None:
    return revisions.decode(store.get(REGISTRY_KEY))


def _version_problems(old: Registry, new: Registry,
                      where: Mapping[str | tuple[str, str], tuple[str, int]]) -> list[ConfigProblem]:
    """A group whose features change must get a new version, or old blobs would be misread."""
    problems = []
    for name, group in new.groups.items():
        file, line = where[name]
        before = old.groups.get(name)
        known = new.history.get((name, group.version)) or (
            before.features if before and before.version == group.version else None)
        if known is not None and known != group.features:
            problems.append(ConfigProblem(file, line, f"feature group '{name}' changed its features but kept "
                                                      f"version {group.version}; bump the version"))
        if before and group.version < before.version:
            problems.append(ConfigProblem(file, line, f"feature group '{name}' version {group.version} is lower "
                                                      f"than the published version {before.version}"))
    return problems


@dataclass(frozen=True)
class Plan:
    """A validated registry and what publishing it changes."""

    registry: Registry
    changes: list[Change]

    @property
    def warnings(self) -> list[Change]:
        return [c for c in self.changes if c.warning]


def prepare(directory: Path, published: Registry | None) -> Plan:
    """Validate `directory` against itself and against what is published; raise ConfigError."""
    new, where = load_registry_located(directory)
    old = published or Registry.empty()
    history = dict(old.history)
    for name, group in old.groups.items():
        history[(name, group.version)] = group.features
    new = replace(new, history=history)
    problems = _version_problems(old, new, where)
    new, model_changes = assign_versions(old, new)
    planned = changes(old, new) + model_changes
    problems += [ConfigProblem(*where.get((c.group, c.feature or ""), where[c.group]), c.message)
                 for c in planned if c.blocking]
    if problems:
        raise ConfigError(problems)
    same = published is not None and revisions.same_content(old, new)
    return Plan(replace(new, revision=old.revision if same else old.revision + 1), planned)


def apply(directory: Path, store: ConfigStore, dry_run: bool = False) -> Plan:
    """Validate and publish atomically: one document, all or nothing. The write is a
    compare-and-set against the registry it was validated with, so two overlapping
    applies cannot drop each other's layout history: the later one raises
    ConcurrentModification and is simply run again."""
    data, version = store.get_versioned(REGISTRY_KEY)
    published = revisions.decode(data)
    plan = prepare(directory, published)
    if not dry_run:
        if published is None or plan.registry.revision != published.revision:
            revisions.save(store, plan.registry)
        store.replace(REGISTRY_KEY, revisions.encode(plan.registry), version)
    return plan


class RegistryFollower:
    """Holds the latest published registry; running services read `.current` per
    request and pick up a new publish without a restart."""

    def __init__(self, store: ConfigStore, on_change: Callable[[Registry], None] | None = None):
        self._lock = threading.Lock()
        self._current = Registry.empty()
        self._on_change = on_change
        # Watch before the first read: a publish in between is then seen by one or the other.
        self._cancel = store.watch(REGISTRY_KEY, self._update)
        first = read_published(store)
        if first is not None:
            with self._lock:
                self._current = first

    @property
    def current(self) -> Registry:
        return self._current

    def _update(self, data: bytes | None) -> None:
        registry = revisions.decode(data)
        if registry is None:
            return
        with self._lock:
            self._current = registry
        if self._on_change:
            self._on_change(registry)

    def close(self) -> None:
        self._cancel()
