"""Nothing lost, nothing shown twice: a known set of sessions is produced, a fault is
injected in the middle of them, the system recovers, and every user's history as
read (and as stored in the cold tier) is compared with what was produced, exactly.
So are the windowed counts (per user and per user x category), against a
brute-force recount of the produced events.

Faults: a worker killed with kill -9; a rebalance that moves open sessions to
another worker; a Redis restart that loses all its memory; a Cassandra outage."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest

from tests.conftest_backends import STACKS
from tests.faults import PrivateRedis, TcpProxy
from tests.processes_helpers import wait_for
from tests.streams.interaction_helpers import Reader, interaction_settings, producer
from tests.streams.processes import settings_env
from vahini.ports.interaction_store import HistoryQuery

USERS = 40


class InteractionWorkerProcess:
    """A worker in its own process; its logs go to a file (a pipe nobody reads would
    fill up and stall the worker)."""

    def __init__(self, settings, log_path):
        self.log_path = log_path
        self._log = open(log_path, "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "vahini.cli", "--json-logs", "ingest", "interactions"],
                                     env=settings_env(settings), stdout=self._log, stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        self._log.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self._log.close()
        assert self.proc.returncode == 0, self.log_tail()

    def log_tail(self) -> str:
        with open(self.log_path) as f:
            return f.read()[-3000:]


class Workload:
    """Sessions of USERS users in two halves: START and the first interactions, then
    the rest, with END for half of the users (the others end by inactivity). A few
    interactions come from users without a session."""

    def __init__(self, settings, seed: int, prefix: str):
        self.settings = settings
        self.rng = random.Random(seed)
        # Half an hour ago: inside every window of the sample registry for the whole test.
        self.t0 = int(time.time() * 1000) - 1_800_000
        # Users of this test only: the cold tier's keyspace is shared by the test session.
        self.users = [f"{prefix}-user{u}" for u in range(USERS)]
        self.expected: dict[str, set[str]] = {u: set() for u in self.users}
        self.sizes = {u: self.rng.randint(5, 40) for u in self.expected}
        self.sent = {u: 0 for u in self.expected}
        self.events: list[tuple[str, str, str]] = []  # (user, type, category) of each interaction produced

    def _interactions(self, p, user: str, upto: int) -> None:
        while self.sent[user] < upto:
            i = self.sent[user]
            event_id = f"{user}-e{i}"
            type_, category = self.rng.choice(["CLICK", "ORDER", "WISHLIST"]), f"c{self.rng.randint(0, 9)}"
            p.interaction(event_id, user, f"p{self.rng.randint(0, 999)}", type_, self.t0 + i * 10,
                          category_id=category)
            self.expected[user].add(event_id)
            self.events.append((user, type_, category))
            self.sent[user] += 1

    def first_half(self) -> None:
        p = producer(self.settings)
        for user in self.expected:
            if user != self.users[0]:  # the first user never has a session: straight to the cold tier
                p.session_event(user, "s1", "START", self.t0)
            self._interactions(p, user, self.sizes[user] // 2)
        p.flush()
        p.close()

    def second_half(self) -> None:
        p = producer(self.settings)
        for k, user in enumerate(self.expected):
            self._interactions(p, user, self.sizes[user])
            if k % 2:
                p.session_event(user, "s1", "END", self.t0 + 100_000)
        p.flush()
        p.close()

    def check(self, *workers: InteractionWorkerProcess, timeout_s: float = 120) -> None:
        """Once every session has ended: each user's history, as read and as stored in the
        cold tier, holds each produced interaction exactly once."""
        reader = Reader(self.settings)

        def all_cold_and_complete() -> bool:
            return all(reader.history(u).source == "cold" and set(reader.ids(u)) == ids
                       for u, ids in self.expected.items())
        def differences() -> str:
            out = []
            for u, ids in self.expected.items():
                h = reader.history(u)
                got = [i.event_id for i in h.interactions]
                if h.source != "cold" or set(got) != ids or len(got) != len(ids):
                    out.append(f"{u}: {h.source}, missing {sorted(ids - set(got))[:5]}, "
                               f"extra {sorted(set(got) - ids)[:5]}, {len(got)} read for {len(ids)}")
            return "; ".join(out)
        try:
            try:
                wait_for(all_cold_and_complete, timeout_s, "every session flushed with all its interactions")
            except AssertionError as exc:
                alive = [f"worker {w.log_path.name}: {'alive' if w.proc.poll() is None else 'exited'}\n"
                         f"{w.log_tail()}" for w in workers]
                raise AssertionError(f"{exc}: {differences()}\n" + "\n".join(alive)) from None
            for user, ids in self.expected.items():
                read = reader.ids(user)
                stored = [i.event_id for i in reader.cold.read(HistoryQuery(user, limit=1000))]
                assert len(read) == len(ids) == len(set(read)), f"{user}: {len(read)} read, {len(ids)} produced"
                assert set(stored) == ids and len(stored) == len(ids), f"{user}: cold tier differs"
        finally:
            reader.close()
        assert sum(len(v) for v in self.expected.values()) == sum(self.sizes.values())
        check_windows(self.settings, self.events, timeout_s)


def recount(events: list[tuple[str, str, str]]) -> dict[tuple[str, str], dict[str, int]]:
    """The sample registry's windowed counts, by brute force: every event produced is in
    every window (they are half an hour old)."""
    names = {"CLICK": "clicks", "ORDER": "orders", "WISHLIST": "wishlists"}
    out: dict[tuple[str, str], dict[str, int]] = {}
    for user, type_, category in events:
        for key in (("user", user), ("user_category", f"{user}|{category}")):
            counts = out.setdefault(key, {"clicks_1h": 0, "clicks_24h": 0, "orders_24h": 0, "wishlists_24h": 0})
            for feature in counts:
                counts[feature] += feature.startswith(names[type_])
    for (entity, _), counts in out.items():
        if entity == "user_category":
            del counts["wishlists_24h"]  # the sample's user x category group has no wishlists
    return out


def check_windows(settings, events: list[tuple[str, str, str]], timeout_s: float = 120) -> None:
    """Every user's and user x category's windowed counts, as Retrieve serves them, equal a
    brute-force recount of the produced events."""
    from tests.streams.test_interaction_windows import Features

    expected = recount(events)
    group = {"user": "user_interaction_windows", "user_category": "user_category_interaction_windows"}
    features = Features(settings)
    served = lambda: {key: features.of(key[0], key[1], group[key[0]]) for key in expected}  # noqa: E731
    try:
        wait_for(lambda: served() == expected, timeout_s, "the windowed counts to equal a brute-force recount")
    except AssertionError as exc:
        got = served()
        wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
        raise AssertionError(f"{exc}: {len(wrong)} of {len(expected)} differ (served, recount): "
                             f"{list(wrong.items())[:5]}") from None
    finally:
        features.close()


def settings_for(kind, request, tmp_path, unique, **overrides):
    return interaction_settings(kind, request, tmp_path, unique, inactivity_timeout_s=3.0,
                                checkpoint_interval_s=2.0, batch_size=50, **overrides)


def sessions_open(settings, load: Workload, log_path, worker_settings=None) -> InteractionWorkerProcess:
    """Produce the first half, start a worker, and wait until sessions are open in the hot tier."""
    load.first_half()
    worker = InteractionWorkerProcess(worker_settings or settings, log_path)
    reader = Reader(settings)
    wait_for(lambda: reader.history(load.users[1]).source == "hot", 60, "sessions open in the hot tier")
    reader.close()
    return worker


@pytest.mark.parametrize("kind", STACKS)
def test_kill_9_in_the_middle_of_sessions_loses_nothing(kind, request, tmp_path, unique):
    settings = settings_for(kind, request, tmp_path, unique)
    load = Workload(settings, seed=1, prefix=unique)
    sessions_open(settings, load, tmp_path / "first.log").kill9()  # their interactions only in the hot tier
    load.second_half()
    worker = InteractionWorkerProcess(settings, tmp_path / "restarted.log")
    load.check(worker)
    worker.stop()


@pytest.mark.parametrize("kind", STACKS)
def test_a_rebalance_moves_open_sessions_and_loses_nothing(kind, request, tmp_path, unique):
    settings = settings_for(kind, request, tmp_path, unique)
    load = Workload(settings, seed=2, prefix=unique)
    first = sessions_open(settings, load, tmp_path / "first.log")
    second = InteractionWorkerProcess(settings, tmp_path / "second.log")  # takes half the partitions and sessions
    load.second_half()
    time.sleep(1.0)
    first.stop()  # and back: the survivor adopts every open session
    load.check(second)
    second.stop()


@pytest.mark.real_service
def test_a_redis_restart_that_loses_all_memory_loses_nothing(request, tmp_path, unique):
    redis = PrivateRedis()
    settings = settings_for("real", request, tmp_path, unique, hot_tier=redis.url)
    load = Workload(settings, seed=3, prefix=unique)
    worker = sessions_open(settings, load, tmp_path / "worker.log")
    redis.restart_empty()
    load.second_half()
    load.check(worker)
    worker.stop()
    redis.stop()


@pytest.mark.real_service
def test_a_cassandra_outage_loses_nothing(request, tmp_path, unique):
    host, port = request.getfixturevalue("cassandra_endpoint").split(":")
    proxy = TcpProxy(host, int(port))
    keyspace = request.getfixturevalue("cassandra_keyspace")
    base = settings_for("real", request, tmp_path, unique)
    behind_proxy = base.model_copy(update={"feature_store": f"cassandra://127.0.0.1:{proxy.port}/{keyspace}"})
    load = Workload(base, seed=4, prefix=unique)
    worker = sessions_open(base, load, tmp_path / "worker.log", behind_proxy)
    proxy.hang()  # Cassandra stops answering: flushes, loads and cold writes time out and are retried
    load.second_half()
    time.sleep(60)  # a minute without Cassandra
    assert worker.proc.poll() is None, "the worker died during the outage"
    proxy.resume()
    load.check(worker)
    worker.stop()


@pytest.mark.parametrize("kind", STACKS)
def test_a_user_above_max_per_type_is_counted_exactly_through_a_kill_9(kind, request, tmp_path, unique):
    """The history keeps max_per_type per type; the windowed counts keep every event."""
    settings = settings_for(kind, request, tmp_path, unique, max_per_type=20)
    t0, events = int(time.time() * 1000) - 1_800_000, []
    heavy, session_user = f"{unique}-heavy", f"{unique}-binge"

    def produce(first: int, last: int) -> None:
        p = producer(settings)
        if first == 0:
            p.session_event(session_user, "s1", "START", t0)
        for i in range(first, last):
            for user in (heavy, session_user):  # 5x max_per_type clicks each, without and within a session
                p.interaction(f"{user}-{i}", user, f"p{i}", "CLICK", t0 + i, category_id=f"c{i % 3}")
                events.append((user, "CLICK", f"c{i % 3}"))
        p.flush()
        p.close()
    produce(0, 50)
    first = InteractionWorkerProcess(settings, tmp_path / "first.log")
    check_windows(settings, events)  # counted, with the session's clicks held only in the hot tier
    first.kill9()  # the restart replays them: the session holds the commit back
    produce(50, 100)
    worker = InteractionWorkerProcess(settings, tmp_path / "restarted.log")
    check_windows(settings, events)
    assert recount(events)[("user", heavy)]["clicks_1h"] == 100
    worker.stop()
