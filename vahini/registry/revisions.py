"""Revisions of the published registry: each publish that changes something gets the
next number, and a copy of the document under its own key, so operators can show an
older one and diff two (`vahini registry show --revision N`, `vahini registry diff`).
The latest stays under `registry`, which servers and workers follow."""

from __future__ import annotations

import json

from vahini.ports.config_store import ConfigStore
from vahini.registry.compat import changes
from vahini.registry.model import Registry


def key_of(revision: int) -> str:
    return f"registry-r{revision}"


def save(store: ConfigStore, registry: Registry) -> None:
    """Keep `registry` as its own revision. Written before the latest is replaced: a
    publish that then loses the race leaves a copy the winner's number overwrites."""
    store.put(key_of(registry.revision), encode(registry))


def encode(registry: Registry) -> bytes:
    return json.dumps(registry.to_json_dict(), sort_keys=True).encode()


def decode(data: bytes | None) -> Registry | None:
    return None if data is None else Registry.from_json_dict(json.loads(data))


def read(store: ConfigStore, revision: int) -> Registry | None:
    return decode(store.get(key_of(revision)))


def same_content(old: Registry, new: Registry) -> bool:
    """Whether `new` publishes what `old` did: the same entities, groups and models (the
    layout and model histories follow from those)."""
    def content(registry: Registry) -> dict:
        d = registry.to_json_dict()
        return {k: d[k] for k in ("entities", "feature_groups", "models")}
    return content(old) == content(new)


def differences(old: Registry, new: Registry) -> list[str]:
    """What goes from `old` to `new`: feature groups and features (as `vahini apply`
    reports them), then entities and models."""
    out = [c.message for c in changes(old, new)]
    for name in sorted(old.entities.keys() - new.entities.keys()):
        out.append(f"entity '{name}' is removed")
    for name in sorted(new.entities.keys() - old.entities.keys()):
        out.append(f"entity '{name}' is added (keys: {', '.join(new.entities[name].keys)})")
    for name in sorted(old.models.keys() - new.models.keys()):
        out.append(f"model '{name}' is removed")
    for name in sorted(new.models.keys() - old.models.keys()):
        out.append(f"model '{name}' is added (version {new.models[name].version})")
    for name in sorted(old.models.keys() & new.models.keys()):
        before, after = old.models[name], new.models[name]
        if before.version != after.version:
            out.append(f"model '{name}' goes from version {before.version} to {after.version}")
    return out
