"""The cluster profile's nodes (infra/cluster.sh) as a test sees them: find the one that
matters (the group coordinator, the KRaft controller), kill it with -9, start it again."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from tests.services import port_open

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
KAFKA_BOOTSTRAP = ",".join(f"{h}:9092" for h in HOSTS)
CASSANDRA_HOSTS = ",".join(HOSTS)
NODES = tuple(f"{kind}-{n}" for kind in ("kafka", "cassandra") for n in (1, 2, 3))


def host_of(node: str) -> str:
    return HOSTS[int(node.rsplit("-", 1)[1]) - 1]


def port_of(node: str) -> int:
    return 9092 if node.startswith("kafka") else 9042


def _pid_file(node: str) -> Path:
    home = Path(os.environ.get("VAHINI_INFRA_HOME", Path.home() / ".cache" / "vahini-infra"))
    kind, n = node.rsplit("-", 1)
    return home / "run" / f"{kind}-cluster-{n}.pid"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a killed process its parent has not reaped yet is dead


def running(node: str) -> bool:
    pid_file = _pid_file(node)
    return pid_file.is_file() and _alive(int(pid_file.read_text()))


def all_listening() -> bool:
    return all(port_open(host_of(n), port_of(n)) for n in NODES)


def kill9(node: str) -> float:
    """SIGKILL the node's process; returns the monotonic time of the kill."""
    pid = int(_pid_file(node).read_text())
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    while _alive(pid):
        time.sleep(0.01)
    return killed_at


def pause(node: str) -> None:
    """SIGSTOP the node: it hangs with its sockets open, as in a GC pause or on a stuck disk."""
    os.kill(int(_pid_file(node).read_text()), signal.SIGSTOP)


def resume(node: str) -> None:
    os.kill(int(_pid_file(node).read_text()), signal.SIGCONT)


def start(*nodes: str) -> None:
    """Start nodes again (a killed one rejoins with its data) and wait until each is healthy."""
    subprocess.run(["bash", str(ROOT / "infra" / "cluster.sh"), "start", *nodes], check=True, timeout=600,
                   stdout=subprocess.DEVNULL)


def restore() -> None:
    """Resume whatever a test left hung, start whatever it left dead."""
    for node in NODES:
        if running(node):
            resume(node)
    dead = [n for n in NODES if not running(n) or not port_open(host_of(n), port_of(n))]
    if dead:
        start(*dead)


def active_controller() -> str:
    out = subprocess.run(["bash", str(ROOT / "infra" / "cluster.sh"), "controller"], check=True, timeout=120,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def group_coordinator(group: str) -> str:
    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    (description,) = admin.describe_consumer_groups([group], request_timeout=30).values()
    return f"kafka-{description.result(30).coordinator.id}"


def partition_leaders(topic: str) -> dict[int, str]:
    """partition -> the broker (kafka-N) that leads it."""
    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    partitions = admin.list_topics(topic, timeout=30).topics[topic].partitions
    return {p: f"kafka-{meta.leader}" for p, meta in partitions.items()}
