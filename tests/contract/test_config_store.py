"""Contract of the ConfigStore port, run against a local directory and ZooKeeper."""

import threading
import time

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


def test_a_callback_that_raises_does_not_stop_the_watch(config_store):
    import threading

    from prometheus_client import REGISTRY

    seen, delivered = [], threading.Event()
    errors = lambda: REGISTRY.get_sample_value("vahini_config_watch_errors_total", {"document": "flaky"}) or 0  # noqa: E731
    before = errors()

    def on_change(data):
        seen.append(data)
        if data == b"bad":
            raise ValueError("cannot parse")
        delivered.set()

    config_store.put("flaky", b"first")
    cancel = config_store.watch("flaky", on_change)
    config_store.put("flaky", b"bad")
    deadline = time.monotonic() + 10
    while errors() == before:
        assert time.monotonic() < deadline, "the failing callback was not counted"
        time.sleep(0.05)
    config_store.put("flaky", b"good")
    assert delivered.wait(10), "no change delivered after a callback raised"
    assert seen[-1] == b"good"
    cancel()
