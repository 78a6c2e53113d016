"""Retrieve with TLS and a bearer token against plaintext, in the same run.

    .venv/bin/python -m benchmarks.secure_retrieve [--users 20000] [--requests 1000]

Needs the real services (Cassandra, Redis, ZooKeeper: make services-start). Two
servers in separate processes read the same data through the same Redis: one
plaintext, one with TLS (a certificate made with openssl) and a tokens file; the
client sends 100 keys x 3 groups per call, sequentially, over one reused channel
(a TLS handshake per connection, not per call, as a ranker's client does).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import numpy as np

from benchmarks.common import real_settings, table
from benchmarks.retrieve import grpc_call, key_sets, latencies, populate
from vahini.serving.api import feature_service_pb2_grpc as pb_grpc
from vahini.serving.tls import channel_credentials
from tests.certs import make_ca, make_cert
from tests.services import free_port, port_open
from tests.streams.processes import settings_env

TOKEN = "bench-ranker-token"


def start(settings, extra_env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**settings_env(settings), **extra_env, "VAHINI_LOG_LEVEL": "ERROR"}
    proc = subprocess.Popen([sys.executable, "-m", "vahini.serving", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not port_open("127.0.0.1", port):
        assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
        time.sleep(0.1)
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per row")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    settings = real_settings(run, f"bench_sec_{run}")
    populate(settings, args.users)
    pki = Path(tempfile.mkdtemp(prefix="vahini-bench-tls-"))
    ca = make_ca(pki, "bench-ca")
    server_cert = make_cert(ca, pki, "server")
    tokens = pki / "callers.yaml"
    tokens.write_text(f"callers:\n  - name: bench\n    token_sha256: {hashlib.sha256(TOKEN.encode()).hexdigest()}\n"
                      f"    allow: [FeatureService.Retrieve]\n")
    secure_env = {"VAHINI_SERVING__TLS__CERT_FILE": str(server_cert.cert),
                  "VAHINI_SERVING__TLS__KEY_FILE": str(server_cert.key),
                  "VAHINI_SERVING__AUTH__TOKENS_FILE": str(tokens)}
    plain_proc, plain_port = start(settings, {})
    secure_proc, secure_port = start(settings, secure_env)
    calls = {
        "plaintext, no token (baseline)": grpc_call(pb_grpc.FeatureServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{plain_port}"))),
        "TLS + bearer token": grpc_call(pb_grpc.FeatureServiceStub(grpc.secure_channel(
            f"127.0.0.1:{secure_port}", channel_credentials(ca.cert, token=TOKEN)))),
    }
    try:
        requests = key_sets(args.users, args.requests, seed=7)
        for call in calls.values():  # warm both: every key of every request in Redis, connections open
            for keys in requests:
                call(keys)
        results = {name: [] for name in calls}
        for _ in range(3):  # interleaved rounds: drift on a noisy machine hits both rows alike
            for name, call in calls.items():
                results[name].append(latencies(call, requests))
    finally:
        for proc in (plain_proc, secure_proc):
            proc.terminate()
            proc.wait(30)
    lat = {name: np.concatenate(parts) for name, parts in results.items()}
    base = lat["plaintext, no token (baseline)"]
    rows = [[name, f"{np.percentile(v, 50):.2f}", f"{np.percentile(v, 99):.2f}",
             f"{np.percentile(v, 50) / np.percentile(base, 50):.2f}x",
             f"{np.percentile(v, 99) / np.percentile(base, 99):.2f}x"] for name, v in lat.items()]
    print(table(f"Retrieve, 100 keys x 3 groups from Redis, {len(base)} sequential calls per row, server in its own "
                f"process", ["serving port", "p50 ms", "p99 ms", "p50 vs plaintext", "p99 vs plaintext"], rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
