"""Fault injection against real services: a TCP proxy the test can cut (the engine
goes away) or hang (the engine stops answering: connections stay open, bytes go
nowhere, as with a black-holing network or a stalled process), and a private
Redis the test can SIGSTOP."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
import signal
import socket
import subprocess
import threading
import time


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._open = True
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self._open:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open:
                client.close()
                return
            upstream = socket.create_connection(self._target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()  # while hung, bytes are held, never answered
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def hang(self) -> None:
        """Keep every connection open and accept new ones, but forward nothing."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self._open = False
        self._listener.close()
        for s in self._conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, so SIGSTOP hangs it
    for this test only."""

    def __init__(self, tls: tuple[Path, Path, Path] | None = None, extra: tuple[str, ...] = ()) -> None:
        """`tls`: (certificate, key, CA) files: the port speaks only TLS (rediss://).
        `extra`: more redis-server arguments, e.g. ACL users."""
        from tests.services import free_port

        self.port = free_port()
        self._tls, self._extra = tls, extra
        self._start()
        self.url = f"{'rediss' if tls else 'redis'}://127.0.0.1:{self.port}/0"

    def _start(self) -> None:
        from tests.services import port_open

        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        ports = ["--port", str(self.port)] if self._tls is None else [
            "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self._tls[0]),
            "--tls-key-file", str(self._tls[1]), "--tls-ca-cert-file", str(self._tls[2]), "--tls-auth-clients", "no"]
        self._proc = subprocess.Popen([binary, *ports, "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--maxmemory-policy", "noeviction", *self._extra],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            assert time.monotonic() < deadline, "private redis-server did not start"
            time.sleep(0.05)

    def restart_empty(self) -> None:
        """Kill and start again on the same port without persistence: every key is gone."""
        self.stop()
        self._start()

    def hang(self) -> None:
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self._proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self._proc.kill()
        self._proc.wait(10)
