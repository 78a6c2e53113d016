"""Contract of the ConfigStore port, run against a local directory and ZooKeeper."""

import threading


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
