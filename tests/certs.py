"""Certificates for the security tests, made with the openssl command line on loopback."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def make_ca(directory: Path, name: str) -> Pair:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", "2", "-subj", f"/CN={name}", cwd=directory)
    return Pair(directory / f"{name}.pem", directory / f"{name}.key")


def make_cert(ca: Pair, directory: Path, name: str, days: int = 2, client: bool = False) -> Pair:
    """A certificate signed by `ca` for 127.0.0.1 and localhost; days=-1 makes it expired."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}", cwd=directory)
    usage = "clientAuth" if client else "serverAuth"
    (directory / f"{name}.ext").write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca.cert), "-CAkey", str(ca.key), "-CAcreateserial",
             "-out", f"{name}.pem", "-days", str(days), "-extfile", f"{name}.ext", cwd=directory)
    return Pair(directory / f"{name}.pem", directory / f"{name}.key")
