"""Config store on Apache ZooKeeper through kazoo. One znode per document; a
znode write is atomic and every watcher sees each new version."""

from __future__ import annotations

from typing import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from vahini.errors import StoreUnavailable
from vahini.adapters.config_watch import guarded
from vahini.ports.config_store import Cancel, ConcurrentModification, Version


class ZooKeeperConfigStore:
    def __init__(self, hosts: str, root: str = "/vahini", timeout_s: float = 10.0):
        self._root = "/" + root.strip("/")
        self._client = KazooClient(hosts=hosts, timeout=timeout_s)
        try:
            self._client.start(timeout=timeout_s)
            self._client.ensure_path(self._root)
        except (KazooTimeoutError, KazooException) as exc:
            self._client.close()
            raise StoreUnavailable(f"cannot connect to ZooKeeper at {hosts}: {exc}") from exc

    def _path(self, name: str) -> str:
        return f"{self._root}/{name}"

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        try:
            self._client.create(path, data)
        except NodeExistsError:
            self._client.set(path, data)

    def get(self, name: str) -> bytes | None:
        try:
            data, _ = self._client.get(self._path(name))
            return data
        except NoNodeError:
            return None

    def get_versioned(self, name: str) -> tuple[bytes | None, Version]:
        try:
            data, stat = self._client.get(self._path(name))
            return data, stat.version
        except NoNodeError:
            return None, None

    def replace(self, name: str, data: bytes, expected: Version) -> None:
        path = self._path(name)
        try:
            if expected is None:
                self._client.create(path, data)
            else:
                self._client.set(path, data, version=expected)
        except (NodeExistsError, BadVersionError, NoNodeError):
            raise ConcurrentModification(f"{path} changed since it was read") from None

    def watch(self, name: str, callback: Callable[[bytes | None], None]) -> Cancel:
        callback = guarded(name, callback)
        cancelled = False
        first = True

        def on_change(data, _stat):
            nonlocal first
            if cancelled:
                return False  # tells kazoo to stop watching
            if not first:  # the first call reports the current value, which the caller already read
                callback(data)
            first = False
            return True

        self._client.DataWatch(self._path(name), on_change)

        def cancel() -> None:
            nonlocal cancelled
            cancelled = True

        return cancel

    def close(self) -> None:
        self._client.stop()
        self._client.close()
