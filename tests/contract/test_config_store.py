"""Contract of the ConfigStore port, run against a local directory and ZooKeeper."""

import threading

import pytest

from vahini.ports.config_store import ConcurrentModification


def test_missing_document_is_none(config_store):
    assert config_store.get("nothing-here") is None


def test_put_replaces_the_whole_document(config_store):
    config_store.put("registry", b'{"v": 1}')
    config_store.put("registry", b'{"v": 2}')
    assert config_store.get("registry") == b'{"v": 2}'


def test_watchers_see_each_new_value_until_cancelled(config_store):
    config_store.put("doc", b"one")
    seen, changed = [], threading.Event()

    def on_change(data):
        seen.append(data)
        changed.set()

    cancel = config_store.watch("doc", on_change)
    config_store.put("doc", b"two")
    assert changed.wait(10), "watcher not called within 10 s"
    assert seen[-1] == b"two"
    cancel()
    changed.clear()
    config_store.put("doc", b"three")
    assert not changed.wait(1.5), "watcher called after cancel"


def test_replace_is_a_compare_and_set(config_store):
    data, version = config_store.get_versioned("cas")
    assert data is None
    config_store.replace("cas", b"first", version)
    data, version = config_store.get_versioned("cas")
    assert data == b"first"
    config_store.replace("cas", b"second", version)
    with pytest.raises(ConcurrentModification):
        config_store.replace("cas", b"stale writer", version)
    _, absent = config_store.get_versioned("never-written")
    with pytest.raises(ConcurrentModification):
        config_store.replace("cas", b"blind create over an existing document", absent)
    assert config_store.get("cas") == b"second"
