"""`vahini registry show` and `vahini registry diff`: what is published, and what changed
between two revisions (vahini.registry.revisions)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict
from typing import Iterator

from vahini import wiring
from vahini.cli.commands import UserError, _settings
from vahini.ports.config_store import ConfigStore
from vahini.registry import revisions
from vahini.registry.model import FeatureGroup, ModelGraph, Registry
from vahini.registry.publish import read_published


def show(args) -> int:
    registry = _registry_at(args, args.revision)
    if args.name:
        return _show_one(registry, args.name, args.json)
    if args.json:
        print(json.dumps({"revision": registry.revision, **registry.to_json_dict()}, indent=2))
        return 0
    print(f"revision {registry.revision}: {len(registry.entities)} entities, {len(registry.groups)} feature groups, "
          f"{len(registry.models)} models")
    print("entities:")
    for entity in registry.entities.values():
        print(f"  {entity.name}  keys: {', '.join(entity.keys)}")
    print("feature groups:")
    for group in registry.groups.values():
        print(f"  {group.name}  v{group.version}  entity: {group.entity}  {len(group.features)} features  "
              f"ttl: {_ttl(group)}{'  (from interactions)' if group.source == 'interactions' else ''}")
    print("models:")
    for model in registry.models.values():
        print(f"  {model.name}  v{model.version}  context: {', '.join(model.context)}  rows: {model.rows}  "
              f"{len(model.columns)} columns{'  scored by ' + ', '.join(s.name for s in model.score) if model.score else ''}")
    return 0


def diff(args) -> int:
    with _published(args) as (store, latest):
        old = _revision(store, args.old, latest)
        new = _revision(store, args.new, latest) if args.new else latest
    found = revisions.differences(old, new)
    if args.json:
        print(json.dumps({"from": old.revision, "to": new.revision, "changes": found}, indent=2))
        return 0
    print(f"revision {old.revision} -> {new.revision}: {len(found)} change(s)")
    for line in found:
        print(f"  {line}")
    return 0


def _show_one(registry: Registry, name: str, as_json: bool) -> int:
    group, model = registry.groups.get(name), registry.models.get(name)
    if group is None and model is None:
        known = sorted([*registry.groups, *registry.models])
        raise UserError(f"no feature group or model '{name}' in revision {registry.revision}; "
                        f"published: {', '.join(known)}")
    if as_json:
        print(json.dumps(asdict(group if group else model), indent=2, default=list))
        return 0
    print(*(_group_lines(group, registry) if group else _model_lines(model, registry)), sep="\n")
    return 0


def _group_lines(group: FeatureGroup, registry: Registry) -> list[str]:
    entity = registry.entities[group.entity]
    older = sorted(v for (g, v) in registry.history if g == group.name and v != group.version)
    lines = [f"feature group {group.name}, version {group.version}"
             + (f" (earlier versions still readable: {', '.join(map(str, older))})" if older else ""),
             f"  entity: {entity.name} (keys: {', '.join(entity.keys)})",
             f"  ttl: {_ttl(group)}   source: {group.source}   cache: redis ttl {group.cache.redis_ttl_s} s"
             + (f", in-process LRU of {group.cache.lru_size}" if group.cache.lru_size else ""),
             "  features:"]
    for feature in group.features:
        kind = f"{feature.type}[{feature.dim}]" if feature.dim else feature.type
        lines.append(f"    {feature.name:<28} {kind:<12} default: {json.dumps(feature.default)}")
    return lines


def _model_lines(model: ModelGraph, registry: Registry) -> list[str]:
    older = sorted(v for (m, v) in registry.model_history if m == model.name)
    lines = [f"model {model.name}, version {model.version}"
             + (f" (earlier versions a request may pin: {', '.join(map(str, older))})" if older else ""),
             f"  context: {', '.join(model.context)}   rows: {model.rows}   on_outage: {model.on_outage}",
             "  lookups:"]
    lines += [f"    {lookup.name:<16} {lookup.group:<32} keys: "
              + ", ".join(f"{column}={source}" for column, source in lookup.keys) for lookup in model.lookups]
    if model.sequences:
        lines.append("  sequences:")
        lines += [f"    {s.name:<16} {s.type} {s.field} of {s.user}, last {s.length}" for s in model.sequences]
    lines.append(f"  columns ({len(model.columns)}):")
    lines += [f"    {c.name:<28} {c.source}{' | ' + c.transform if c.transform else ''}  {c.dtype}"
              for c in model.columns]
    for node in model.score:
        lines.append(f"  score {node.name}: " + ", ".join(f"{e.target}/{e.model} {e.percent}%" for e in node.endpoints))
    return lines


def _ttl(group: FeatureGroup) -> str:
    return "never expires" if not group.ttl_s else f"{group.ttl_s} s"


def _registry_at(args, revision: int | None) -> Registry:
    with _published(args) as (store, latest):
        return _revision(store, revision, latest) if revision else latest


@contextmanager
def _published(args) -> Iterator[tuple[ConfigStore, Registry]]:
    """The config store of the command's settings and the latest registry published there."""
    settings = _settings(args)
    store = wiring.config_store(settings)
    try:
        latest = read_published(store)
        if latest is None:
            raise UserError(f"nothing is published to {settings.config_store}: run `vahini apply DIR` first")
        yield store, latest
    finally:
        store.close()


def _revision(store, revision: int, latest: Registry) -> Registry:
    if revision == latest.revision:
        return latest
    found = revisions.read(store, revision) if 0 < revision < latest.revision else None
    if found is None:
        raise UserError(f"no registry revision {revision}: revisions kept are 1 to {latest.revision}"
                        if latest.revision else "the published registry has no revisions yet: apply it again")
    return found
