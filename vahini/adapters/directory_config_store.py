"""Config store on a local directory: one file per document, replaced atomically
(write, fsync, rename). Watchers poll the file's change time."""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from vahini.adapters.config_watch import guarded
from vahini.ports.config_store import Cancel, ConcurrentModification, Version


class DirectoryConfigStore:
    def __init__(self, directory: str, poll_interval_s: float = 0.5):
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._poll_s = poll_interval_s

    def _path(self, name: str) -> Path:
        return self._dir / f"{name}.json"

    def put(self, name: str, data: bytes) -> None:
        target = self._path(name)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextmanager
    def _locked(self):
        """Serialises compare-and-set across processes sharing the directory."""
        with open(self._dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def get_versioned(self, name: str) -> tuple[bytes | None, Version]:
        with self._locked():
            return self.get(name), self._stamp(name)

    def replace(self, name: str, data: bytes, expected: Version) -> None:
        with self._locked():
            if self._stamp(name) != expected:
                raise ConcurrentModification(f"{self._path(name)} changed since it was read")
            self.put(name, data)

    def get(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def _stamp(self, name: str) -> tuple[int, int, int] | None:
        try:
            st = self._path(name).stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def watch(self, name: str, callback: Callable[[bytes | None], None]) -> Cancel:
        stop = threading.Event()
        last = self._stamp(name)
        callback = guarded(name, callback)

        def poll() -> None:
            nonlocal last
            while not stop.wait(self._poll_s):
                stamp = self._stamp(name)
                if stamp != last:
                    last = stamp
                    callback(self.get(name))

        threading.Thread(target=poll, name=f"config-watch-{name}", daemon=True).start()
        return stop.set

    def close(self) -> None:
        pass
