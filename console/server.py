"""Serve the console with uvicorn, on the serving port's TLS settings."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass

import uvicorn

from vahini.console.access import Access
from vahini.console.app import build_app
from vahini.console.calls import Caller
from vahini.console.sources import Sources
from vahini.logs import get_logger
from vahini.serving.auth import CallerTable
from vahini.settings import Settings

log = get_logger(__name__)


@dataclass
class RunningConsole:
    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    sources: Sources

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sources.close()


def _config(settings: Settings, app) -> uvicorn.Config:
    tls = settings.serving.tls
    extra: dict = {}
    if tls.cert_file and tls.key_file:
        extra = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
        if tls.client_ca_file:
            extra.update(ssl_ca_certs=str(tls.client_ca_file), ssl_cert_reqs=ssl.CERT_REQUIRED)
    # uvicorn's own loggers stay quiet: Vahini logs the start, and access lines add nothing an operator needs.
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **extra)


def start_console(settings: Settings, port: int | None = None) -> RunningConsole:
    """Start serving in a thread (port 0: any free port) and return once it listens."""
    auth = settings.serving.auth
    access = Access(CallerTable(auth.tokens_file, auth.reload_interval_s) if auth.tokens_file else None)
    sources = Sources(settings)
    app = build_app(sources, Caller(settings), access)
    config = _config(settings, app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    host = settings.console.host
    sock.bind((host, settings.console.port if port is None else port))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="console", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    bound = sock.getsockname()[1]
    scheme = "https" if config.ssl_certfile else "http"
    url = f"{scheme}://{host}:{bound}"
    log.info("console_started", url=url, auth="tokens file" if not access.open else "open (no tokens file)")
    return RunningConsole(url, bound, server, thread, sources)
