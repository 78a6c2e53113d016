"""One connection to ScyllaDB or Apache Cassandra, shared by the adapters that
store in it: token-aware routing, a keyspace created on first use, and requests
run with bounded concurrency, each within what is left of the caller's deadline."""

from __future__ import annotations

import io
import re
import ssl
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from cassandra import ConsistencyLevel, DriverException, OperationTimedOut
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.protocol import BatchMessage, ProtocolHandler
from cassandra.query import BatchStatement, BatchType, BoundStatement, tuple_factory

from vahini import fast_paths
from vahini.backoff import Backoff
from vahini.adapters.cassandra_hedging import (HedgedReads, HedgeOptions, ObservedLatency, same_speculative_retry,
                                              wanted_speculative_retry)
from vahini.errors import DeadlineExceeded, StoreUnavailable
from vahini.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class CassandraOptions:
    hosts: Sequence[str]
    port: int = 9042
    keyspace: str = "vahini"
    replication_factor: int = 1
    local_dc: str | None = None
    consistency: str = "LOCAL_QUORUM"
    concurrency: int = 128
    request_timeout_s: float = 10.0
    credentials: tuple[str, str] | None = None
    tls: tuple | None = None  # (CA file, client certificate or None, its key or None): client-to-node TLS
    compression: bool = False
    protocol_version: int = 4
    schema_timeout_s: float = 60.0  # how long start-up waits for the nodes to agree on the schema
    hedge: HedgeOptions | None = HedgeOptions()  # reads (run(..., hedged=True)) only; None: never hedge
    # A node that has sent nothing for heartbeat_interval_s gets a heartbeat; unanswered within
    # heartbeat_timeout_s, its connection is closed and the node marked down (the driver's
    # defaults, 30 s and 30 s, keep sending a hung node requests for up to a minute).
    heartbeat_interval_s: float = 5.0
    heartbeat_timeout_s: float = 5.0
    reconnect_max_delay_s: float = 30.0  # a node marked down is tried again at most this far apart
    # A hung node accepts TCP but never answers the handshake: each attempt to reconnect to
    # it holds one of the driver's executor threads this long, and the driver's retries
    # wait for a free one. More threads than its default 2 keep retries off that queue.
    connect_timeout_s: float = 5.0
    executor_threads: int = 8
    speculative_retry: str = "auto"  # the tables' (see cassandra_hedging.wanted_speculative_retry)


def _ssl_context(tls: tuple | None) -> ssl.SSLContext | None:
    """Verify each node's certificate against the CA and its address (check_hostname)."""
    if tls is None:
        return None
    ca, cert, key = tls
    context = ssl.create_default_context(cafile=str(ca))
    if cert:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


class EncodedStatements(list):
    """A batch's statements as the driver keeps them, (prepared, query id, values), and
    beside them in `encoded` each one as a BATCH body writes it (kind, id, values with
    their lengths), made by the caller while it serializes the row. The driver writes
    every value through Python calls of its own, which cost as much as the rest of
    writing a row. Set as a BatchStatement's `_statements_and_parameters` (pinned driver,
    tests/contract/test_cassandra_driver_internals.py)."""

    __slots__ = ("encoded",)

    def __init__(self) -> None:
        super().__init__()
        self.encoded: list[bytes] = []

    def add(self, query_id: bytes, values: list[bytes], encoded: bytes) -> None:
        """A prepared statement with its values, and the same as the BATCH body writes it."""
        self.append((True, query_id, values))
        self.encoded.append(encoded)


_COUNT = struct.Struct(">H")
_TABLE_NAME = re.compile(r"CREATE TABLE IF NOT EXISTS \{ks\}\.(\w+)")
HEDGED_READS = "hedged_reads"  # the execution profile of reads that may be hedged


class _PreEncodedBatch(BatchMessage):
    def send_body(self, f, protocol_version, protocol_features=None):
        options = io.BytesIO()  # the driver writes everything but the statements, as it would
        BatchMessage(self.batch_type, (), self.consistency_level, self.serial_consistency_level, self.timestamp,
                     self.keyspace).send_body(options, protocol_version, protocol_features)
        written = options.getvalue()  # batch type (1 byte), 0 statements (2 bytes), the batch's options
        f.write(written[:1])
        f.write(_COUNT.pack(len(self.queries)))
        f.write(b"".join(self.queries.encoded))
        f.write(written[3:])


class PreEncodingProtocolHandler(ProtocolHandler):
    """The driver's ProtocolHandler, except that a BATCH of EncodedStatements is written
    from their encodings: byte for byte the body the driver would write."""

    @classmethod
    def encode_message(cls, msg, *args, **kwargs):
        if type(msg) is BatchMessage and type(msg.queries) is EncodedStatements:
            pre_encoded = _PreEncodedBatch.__new__(_PreEncodedBatch)
            pre_encoded.__dict__.update(msg.__dict__)
            msg = pre_encoded
        return super().encode_message(msg, *args, **kwargs)


def public_batches(statements: Iterable[tuple[BoundStatement, int]], primary_of: Callable[[bytes], object],
                   max_rows: int, max_bytes: int) -> list[BatchStatement]:
    """Unlogged batches of (bound statement, its size) sharing a primary replica, within
    max_rows and max_bytes, through the driver's public API alone (`BatchStatement.add`):
    the writers' path while fast paths are off (`vahini.fast_paths`)."""
    batches: list[BatchStatement] = []
    filling: dict[object, list] = {}  # primary replica -> [its batch being filled, rows, bytes]
    for bound, nbytes in statements:
        replica = primary_of(bound.routing_key)
        slot = filling.get(replica)
        if slot is None or slot[1] >= max_rows or slot[2] + nbytes > max_bytes:
            batch = BatchStatement(BatchType.UNLOGGED)
            batch.is_idempotent = True
            slot = filling[replica] = [batch, 0, 0]
            batches.append(batch)
        slot[0].add(bound)  # the batch takes its routing key and keyspace from its first statement
        slot[1] += 1
        slot[2] += nbytes
    return batches


class CassandraSession:
    def __init__(self, options: CassandraOptions, tables: Sequence[str] = (), create_schema: bool = True):
        """Connect; with `create_schema`, create the keyspace and run each CREATE TABLE
        IF NOT EXISTS of `tables` (`{ks}` stands for the keyspace)."""
        self.options = options
        self.keyspace = options.keyspace
        self.read_latency = ObservedLatency(options.hedge) if options.hedge else None
        self._sampled = 0
        auth = PlainTextAuthProvider(*options.credentials) if options.credentials else None
        self.cluster = Cluster(list(options.hosts), port=options.port, execution_profiles=self._profiles(),
                               connect_timeout=options.connect_timeout_s,
                               executor_threads=options.executor_threads, auth_provider=auth,
                               ssl_context=_ssl_context(options.tls),
                               compression=options.compression, protocol_version=options.protocol_version,
                               idle_heartbeat_interval=options.heartbeat_interval_s,
                               idle_heartbeat_timeout=options.heartbeat_timeout_s,
                               reconnection_policy=ExponentialReconnectionPolicy(
                                   1.0, options.reconnect_max_delay_s))
        try:
            self.session = self.cluster.connect()
            if fast_paths.enabled():  # off: the driver's own handler writes every message
                self.session.client_protocol_handler = PreEncodingProtocolHandler
            if create_schema:
                self._create_schema(tables)
        except (NoHostAvailable, DriverException, OSError) as exc:
            self.cluster.shutdown()
            raise StoreUnavailable(f"cannot connect to Cassandra/Scylla at {list(options.hosts)}:{options.port}: "
                                   f"{exc}") from exc

    def _profiles(self) -> dict:
        """The default profile (writes, DDL), and HEDGED_READS: the same, plus hedging."""
        o = self.options

        def profile(**extra) -> ExecutionProfile:
            return ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=o.local_dc)),
                consistency_level=getattr(ConsistencyLevel, o.consistency), request_timeout=o.request_timeout_s,
                # Rows as plain tuples: the default builds a namedtuple class for every result,
                # and reads are one statement per key (a store read of 100 keys x 3 groups took
                # 0.4-0.6x the CPU without it). The adapters unpack rows by position.
                row_factory=tuple_factory, **extra)
        profiles = {EXEC_PROFILE_DEFAULT: profile()}
        if o.hedge and self.read_latency is not None:
            profiles[HEDGED_READS] = profile(speculative_execution_policy=HedgedReads(self.read_latency,
                                                                                      o.hedge.max_hedges))
        return profiles

    def _create_schema(self, tables: Sequence[str]) -> None:
        """Workers start together and race to create the schema. Each waits until every
        node agrees on it before preparing statements, and retries a failed attempt
        (a node that has not heard of a table yet, agreement not reached in time)."""
        deadline, backoff = time.monotonic() + self.options.schema_timeout_s, Backoff(0.2, 5.0)
        while True:
            try:
                self._apply_schema(tables)
                return
            except (NoHostAvailable, DriverException, OSError) as exc:
                delay = backoff.next_s()
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("cassandra_schema_retry", error=str(exc), retry_in_s=round(delay, 3))
                time.sleep(delay)

    def _replication(self) -> str:
        """NetworkTopologyStrategy with replication_factor copies in the local data centre
        (or in each one the driver sees, when none is set)."""
        centres = [self.options.local_dc] if self.options.local_dc else \
            sorted({h.datacenter for h in self.cluster.metadata.all_hosts() if h.datacenter})
        factors = ", ".join(f"'{dc}': {self.options.replication_factor}" for dc in centres)
        return f"{{'class': 'NetworkTopologyStrategy', {factors}}}"

    def _ddl_host(self):
        # Every DDL goes through one coordinator, the lowest live address: IF NOT EXISTS
        # then sees a racing process's table, instead of two nodes each creating one.
        return min((h for h in self.cluster.metadata.all_hosts() if h.is_up), key=lambda h: h.address, default=None)

    def ddl(self, statement: str) -> None:
        """Run one schema statement (`{ks}`: the keyspace) through the DDL coordinator and
        wait for the nodes to agree on it."""
        self.session.execute(statement.format(ks=self.keyspace), host=self._ddl_host())
        self.cluster.refresh_schema_metadata(max_schema_agreement_wait=self.options.schema_timeout_s)

    def _apply_schema(self, tables: Sequence[str]) -> None:
        ddl_host = self._ddl_host()
        # Only when missing: with authorization on, CREATE KEYSPACE needs rights on every
        # keyspace, even with IF NOT EXISTS, and an operator may have made it already.
        if self.keyspace not in self.cluster.metadata.keyspaces:
            self.session.execute(f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} WITH replication = "
                                 f"{self._replication()}", host=ddl_host)
        for table in tables:
            self.session.execute(table.format(ks=self.keyspace), host=ddl_host)
        self.cluster.refresh_schema_metadata(max_schema_agreement_wait=self.options.schema_timeout_s)
        self._set_speculative_retry(tables, ddl_host)

    def _set_speculative_retry(self, tables: Sequence[str], ddl_host) -> None:
        """ALTER only the tables whose value differs: a schema change at every start of
        every worker would keep the nodes busy agreeing on it."""
        system = self.cluster.metadata.keyspaces.get("system")
        wanted = wanted_speculative_retry(self.options.speculative_retry,
                                          is_scylla=system is not None and "scylla_local" in system.tables)
        if wanted is None:
            return
        existing = self.cluster.metadata.keyspaces[self.keyspace].tables
        altered = False
        for name in (_table_name(t) for t in tables):
            current = existing[name].options.get("speculative_retry", "") if name in existing else ""
            if not same_speculative_retry(current, wanted):
                self.session.execute(f"ALTER TABLE {self.keyspace}.{name} WITH speculative_retry = '{wanted}'",
                                     host=ddl_host)
                log.info("cassandra_speculative_retry_set", table=name, was=current, now=wanted)
                altered = True
        if altered:
            self.cluster.refresh_schema_metadata(max_schema_agreement_wait=self.options.schema_timeout_s)

    def prepare(self, cql: str, idempotent: bool = True):
        try:
            statement = self.session.prepare(cql.format(ks=self.keyspace))
        except (NoHostAvailable, DriverException, OSError) as exc:
            raise StoreUnavailable(f"Cassandra/Scylla could not prepare a statement: {exc}") from exc
        statement.is_idempotent = idempotent
        return statement

    def run(self, statements_and_params: list, timeout_s: float | None, hedged: bool = False,
            concurrency: int | None = None) -> list:
        """Run statements with at most `concurrency` (default: the options') in flight, each
        bounded by what is left of `timeout_s`; driver failures become StoreUnavailable or
        DeadlineExceeded. `hedged`: idempotent reads, sent again to another replica when one is slow."""
        limit = concurrency or self.options.concurrency
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        profile = HEDGED_READS if hedged and self.read_latency is not None else EXEC_PROFILE_DEFAULT
        in_flight: deque = deque()
        results: list = []
        try:
            for statement, params in statements_and_params:
                if len(in_flight) >= limit:
                    results.append(self._result(in_flight.popleft(), deadline, profile))
                future = self.session.execute_async(statement, params, timeout=self._timeout(deadline),
                                                    execution_profile=profile)
                if profile == HEDGED_READS:
                    self._time_some(future)
                in_flight.append((future, statement, params))
            while in_flight:
                results.append(self._result(in_flight.popleft(), deadline, profile))
        except (NoHostAvailable, DriverException, ConnectionException, OSError) as exc:
            if deadline is not None and isinstance(exc, OperationTimedOut) and time.monotonic() >= deadline - 0.005:
                raise DeadlineExceeded(f"Cassandra/Scylla did not answer within {timeout_s:.3f} s") from exc
            raise StoreUnavailable(f"Cassandra/Scylla request failed: {type(exc).__name__}: {exc}") from exc
        return results

    def _result(self, sent: tuple, deadline: float | None, profile) -> object:
        """One statement's result. A hedged read whose replicas were all tried is sent once more.
        The driver fails a read outright when the connection of its first replica closes
        (a hung node's, at its heartbeat) after the hedges took the rest of its query plan,
        though they are still in flight. That node is marked down by then, so the resend
        goes to live replicas."""
        future, statement, params = sent
        try:
            return future.result()
        except (NoHostAvailable, ConnectionException) as exc:
            if profile != HEDGED_READS:
                raise
            log.info("cassandra_read_resent", error=f"{type(exc).__name__}: {exc}"[:300])
            return self.session.execute(statement, params, timeout=self._timeout(deadline),
                                        execution_profile=profile)

    def _time_some(self, future) -> None:
        """Time one read in `sample_every`, for the hedges' delay."""
        self._sampled += 1
        hedge, latency = self.options.hedge, self.read_latency
        if hedge is not None and latency is not None and self._sampled % hedge.sample_every == 0:
            future.add_callback(latency.record_answer, future, time.monotonic())

    def _timeout(self, deadline: float | None) -> float:
        if deadline is None:
            return self.options.request_timeout_s
        left = deadline - time.monotonic()
        if left <= 0:
            raise OperationTimedOut("deadline passed before the request was sent")
        return min(left, self.options.request_timeout_s)

    def close(self) -> None:
        self.cluster.shutdown()


def _table_name(ddl: str) -> str:
    """The table a CREATE TABLE statement of ours creates."""
    found = _TABLE_NAME.search(ddl)
    if found is None:
        raise ValueError(f"not a CREATE TABLE statement: {ddl[:80]!r}")
    return found.group(1)
