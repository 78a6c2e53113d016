"""Live traffic for the fault tests: a producer sending feature updates at a steady rate,
and a probe that samples a worker's committed-event counter to time a stall."""

from __future__ import annotations

import threading
import time
import urllib.request

from tests.streams.helpers import CODEC, update
from vahini import wiring
from vahini.codecs.avro import FEATURE_UPDATE
from vahini.errors import StoreUnavailable
from vahini.settings import Settings


class SteadyProducer:
    """Sends `rate` updates a second, each with a later event time than the user's last,
    so `newest` (user -> event time of the newest update) is what must be stored."""

    def __init__(self, settings: Settings, rate: int = 2000, users: int = 5000):
        self._settings, self._rate, self._users = settings, rate, users
        self._log = wiring.event_log(settings)
        self._log.create_topic(settings.topics.feature_updates, settings.topics.partitions)
        self._producer = self._log.producer()
        self.newest: dict[str, int] = {}
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = int(time.time() * 1000) - 600_000
        tick = 0.05
        per_tick = max(1, int(self._rate * tick))
        while not self._stop.is_set():
            started = time.monotonic()
            for _ in range(per_tick):
                user = f"u{self.sent % self._users}"
                clicks = self.sent // self._users
                self._producer.send(self._settings.topics.feature_updates,
                                    CODEC.encode(FEATURE_UPDATE, update(user, clicks, t0 + clicks)))
                self.newest[user] = t0 + clicks
                self.sent += 1
            self._stop.wait(max(0.0, tick - (time.monotonic() - started)))

    def stop(self) -> int:
        """Stop sending, wait until every sent update is acknowledged, return how many."""
        self._stop.set()
        self._thread.join(30)
        self._producer.flush(120)
        self._log.close()
        return self.sent


def metric(port: int, name: str) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(name) and not line.startswith(name + "_created")]
    return sum(values) if values else None


class CommitProbe:
    """Samples the workers' `vahini_ingest_events_total` (counted once a batch is
    committed), summed over the workers, every 50 ms."""

    def __init__(self, *metrics_ports: int):
        self._ports = metrics_ports
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            values = [metric(port, "vahini_ingest_events_total") for port in self._ports]
            if None not in values:
                self.samples.append((time.monotonic(), sum(values)))
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def longest_stall_after(self, since: float) -> float:
        """The longest time after `since` (up to the probe's stop) with no batch committed."""
        last_change, last_value, longest = since, None, 0.0
        for at, value in self.samples:
            if at < since:
                last_value = value
                continue
            if value != last_value:
                longest = max(longest, at - last_change)
                last_change, last_value = at, value
        if self.samples:
            longest = max(longest, self.samples[-1][0] - last_change)
        return longest


def stored_event_times(settings: Settings, users: list[str], attempts: int = 1) -> dict[str, int]:
    """user -> event time of its stored row, read straight from the feature store at the
    settings' consistency (LOCAL_QUORUM), 500 keys a read. With `attempts` > 1 a read
    that times out is tried again: for checking what was stored, on a machine whose two
    cores also run six cluster JVMs, not for testing that reads work."""
    store = wiring.feature_store(settings)
    out: dict[str, int] = {}
    try:
        for start in range(0, len(users), 500):
            out.update(_read(store, users[start:start + 500], attempts))
    finally:
        store.close()
    return out


def _read(store, users: list[str], attempts: int) -> dict[str, int]:
    for attempt in range(attempts):
        try:
            rows = store.read("user", users, ["user_activity"])
            return {user: row.event_time_ms for (user, _), row in rows.items()}
        except StoreUnavailable:
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    return {}


class LiveIngest:
    """Two ingest workers (static group members, each with a metrics port) draining a
    SteadyProducer's live traffic; ready once both have ingested."""

    def __init__(self, settings: Settings):
        from tests.services import free_port
        from tests.streams.processes import WorkerProcess
        from tests.streams.test_worker_processes import wait_until

        self.settings = settings
        self.ports = [free_port(), free_port()]
        self.producer = SteadyProducer(settings)
        self.workers = [WorkerProcess(settings.model_copy(update={"kafka_group_instance_id": f"worker-{i}"}),
                                      metrics_port=port) for i, port in enumerate(self.ports)]
        wait_until(lambda: all((metric(port, "vahini_ingest_events_total") or 0) > 2000 for port in self.ports),
                   120, "both workers to ingest")

    def total(self, name: str) -> float:
        """A counter summed over both workers."""
        return sum(metric(port, name) or 0 for port in self.ports)

    def finish(self) -> tuple[int, dict]:
        """Stop the traffic, wait until every partition is committed to its end, stop the
        workers: (events sent, the workers' final summaries summed: events, dead_lettered,
        ...). The workers' last log lines are printed if the commits never get there."""
        from tests.streams.helpers import wait_for_commits

        sent = self.producer.stop()
        try:
            wait_for_commits(self.settings, 180)
        except AssertionError:
            for i, worker in enumerate(self.workers):
                print(f"--- worker {i}, last log lines:\n" + "\n".join(worker.logs().splitlines()[-40:]))
            raise
        summaries = [worker.terminate() for worker in self.workers]
        return sent, {k: sum(s[k] for s in summaries) for k in summaries[0]}
