"""TLS for the serving port and for clients of it.

The server's certificate, key and client CA are re-read whenever their files
change (checked at each new connection's handshake), so certificates rotate
without a restart: replace the files, and new connections get the new ones
while open connections finish on the old.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import grpc

from vahini.errors import BadSettings
from vahini.logs import get_logger

log = get_logger(__name__)


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadSettings(f"serving.tls.{what}: cannot read {path}: {exc.strerror}") from None


class _CertificateFiles:
    def __init__(self, tls):
        if tls.cert_file is None or tls.key_file is None:
            raise BadSettings("serving.tls: cert_file and key_file go together")
        self._tls = tls
        self._lock = threading.Lock()
        self._stamp = self._stamps()
        self.initial = self._configuration()

    def _paths(self) -> list[Path]:
        return [Path(p) for p in (self._tls.cert_file, self._tls.key_file, self._tls.client_ca_file) if p]

    def _stamps(self) -> tuple:
        try:
            return tuple((os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in self._paths())
        except OSError:
            return ()

    def _configuration(self):
        tls = self._tls
        pair = (_read(tls.key_file, "key_file"), _read(tls.cert_file, "cert_file"))
        return grpc.ssl_server_certificate_configuration([pair], _read(tls.client_ca_file, "client_ca_file"))

    def fetch(self):
        """New configuration when a file changed, else None (keep the current one)."""
        with self._lock:
            stamp = self._stamps()
            if not stamp or stamp == self._stamp:
                return None
            try:
                configuration = self._configuration()
            except BadSettings as exc:  # mid-rotation: a file is missing; keep serving with the old
                log.warning("tls_reload_deferred", error=str(exc))
                return None
            self._stamp = stamp
            log.info("tls_certificates_reloaded", cert_file=str(self._tls.cert_file))
            return configuration


def server_credentials(tls) -> grpc.ServerCredentials:
    files = _CertificateFiles(tls)
    return grpc.dynamic_ssl_server_credentials(files.initial, files.fetch,
                                               require_client_authentication=tls.client_ca_file is not None)


def channel_credentials(ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None,
                        token: str | None = None) -> grpc.ChannelCredentials:
    """TLS to the server (trusting `ca_file`, or the system roots), a client certificate
    for mutual TLS, and a bearer token on every call."""
    read = lambda p: None if p is None else Path(p).read_bytes()  # noqa: E731
    credentials = grpc.ssl_channel_credentials(read(ca_file), read(key_file), read(cert_file))
    if token:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
    return credentials
