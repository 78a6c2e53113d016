"""Config store on Apache ZooKeeper through kazoo. One znode per document; a
znode write is atomic and every watcher sees each new version."""

from __future__ import annotations

from typing import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NoAuthError, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from vahini.errors import NotAllowed, StoreUnavailable
from vahini.adapters.config_watch import guarded
from vahini.ports.config_store import Cancel, ConcurrentModification, Version


class ZooKeeperConfigStore:
    """`auth`: (user, password) this process authenticates with (digest scheme).
    `acl`: the ACL of every znode it creates (None: open to all); readers never
    create znodes, so only a writer's ACL is ever set."""

    def __init__(self, hosts: str, root: str = "/vahini", timeout_s: float = 10.0,
                 auth: tuple[str, str] | None = None, acl: list | None = None):
        self._root = "/" + root.strip("/")
        self._user = auth[0] if auth else "anonymous"
        self._client = KazooClient(hosts=hosts, timeout=timeout_s, default_acl=acl,
                                   auth_data=[("digest", f"{auth[0]}:{auth[1]}")] if auth else None)
        try:
            self._client.start(timeout=timeout_s)
        except (KazooTimeoutError, KazooException) as exc:
            self._client.close()
            raise StoreUnavailable(f"cannot connect to ZooKeeper at {hosts}: {exc}") from exc

    def _path(self, name: str) -> str:
        return f"{self._root}/{name}"

    def _refused(self, path: str) -> NotAllowed:
        return NotAllowed(f"ZooKeeper refused to let '{self._user}' change {path}: the znode's ACL does not allow "
                          f"it (only the principal that runs `vahini apply` may write the registry)")

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        try:
            self._client.ensure_path(self._root)
            try:
                self._client.create(path, data)
            except NodeExistsError:
                self._client.set(path, data)
        except NoAuthError:
            raise self._refused(path) from None

    def get(self, name: str) -> bytes | None:
        return self.get_versioned(name)[0]

    def get_versioned(self, name: str) -> tuple[bytes | None, Version]:
        try:
            data, stat = self._client.get(self._path(name))
            return data, stat.version
        except NoNodeError:
            return None, None
        except NoAuthError:
            raise NotAllowed(f"ZooKeeper refused to let '{self._user}' read {self._path(name)}: not in its ACL") \
                from None

    def replace(self, name: str, data: bytes, expected: Version) -> None:
        path = self._path(name)
        try:
            if expected is None:
                self._client.ensure_path(self._root)
                self._client.create(path, data)
            else:
                self._client.set(path, data, version=expected)
        except (NodeExistsError, BadVersionError, NoNodeError):
            raise ConcurrentModification(f"{path} changed since it was read") from None
        except NoAuthError:
            raise self._refused(path) from None

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
