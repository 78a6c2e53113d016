"""The channel the CLI and the demo call a server on. Rankers use the client SDK
(clients/python, `vahini-client`); the CLI makes one call per command, without
retries, so it needs only the channel and its credentials."""

from __future__ import annotations

import grpc

from vahini.serving.tls import channel_credentials


def connect(target: str, token: str | None = None, ca_file: str | None = None, cert_file: str | None = None,
            key_file: str | None = None, tls: bool = False) -> tuple[grpc.Channel, list | None]:
    """A channel to a Vahini server, and the metadata to send on each call: with a CA
    file (or tls=True: the system roots) TLS with the token in its call credentials;
    without, plaintext with the token in the metadata (loopback only)."""
    if tls or ca_file or cert_file:
        return grpc.secure_channel(target, channel_credentials(ca_file, cert_file, key_file, token)), None
    return grpc.insecure_channel(target), ([("authorization", f"Bearer {token}")] if token else None)
