"""One typed settings object, built once at start-up from (highest first):
explicit arguments, VAHINI_* environment variables, a TOML settings file, defaults.
Nested fields use `__` in environment names: VAHINI_INGEST__BATCH_SIZE=5000.

Backends are chosen by URL scheme:
  event_log      sqlite:///path/events.db   | kafka://host:9092[,host2:9092]
  feature_store  sqlite:///path/features.db | cassandra://host[,host2]:9042/keyspace  (scylla:// is the same)
  feature_cache  sqlite:///path/hot.db (shared by local processes) | memory:// (this process only)
                 | redis://host:6379/0  (Dragonfly speaks the same protocol)
  config_store   file://path/to/dir         | zk://host:2181[,host2:2181]/root
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from vahini.errors import BadSettings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

SETTINGS_FILE_ENV = "VAHINI_SETTINGS_FILE"


class _Section(BaseModel):
    """A settings section; a misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class TopicSettings(_Section):
    feature_updates: str = "vahini.feature-updates"
    # One topic for both kinds by default: a user's session events and interactions
    # then share a partition, and are processed in the order they were produced.
    interactions: str = "vahini.interactions"
    sessions: str = "vahini.interactions"
    dead_letter: str = "vahini.dead-letter"
    feature_log: str = Field("vahini.feature-log", description="Served responses of models with `log: {sample: ...}` "
                                                               "(FeatureLog, Avro)")
    partitions: int = Field(8, ge=1, description="Partitions for topics Vahini creates")
    replication_factor: int = Field(1, ge=1)


class IngestSettings(_Section):
    group: str = "vahini-feature-ingest"
    batch_size: int = Field(5000, ge=1, description="Max events decoded, merged and written together")
    batch_linger_ms: int = Field(50, ge=0, description="Max wait to fill a batch")
    write_concurrency: int = Field(128, ge=1, description="In-flight store writes per worker")
    max_future_skew_ms: int = Field(300_000, ge=0, description="Events further in the future are dead-lettered")
    retry_backoff_max_s: float = Field(30.0, gt=0, description="Longest wait between retries of a failed write")
    max_key_bytes: int = Field(256, ge=1, description="Longest key part (UTF-8 bytes) producers and workers accept")
    max_string_bytes: int = Field(65_536, ge=1, description="Longest string feature value (UTF-8 bytes) accepted; "
                                  "larger values are rejected by producers and dead-lettered by workers")


class ServingTlsSettings(_Section):
    """TLS on the serving port. Files are re-read when they change: rotate a
    certificate by replacing its files; new connections get the new one."""

    cert_file: Path | None = Field(None, description="PEM certificate chain of the server; with key_file: TLS on")
    key_file: Path | None = Field(None, description="PEM private key of the server")
    client_ca_file: Path | None = Field(None, description="PEM CA bundle: clients must present a certificate it "
                                        "signed (mutual TLS)")


class ServingAuthSettings(_Section):
    tokens_file: Path | None = Field(None, description="YAML file of callers (name, token_sha256, allow, groups, "
                                     "models); set: every call but health checks needs a caller's bearer token")
    reload_interval_s: float = Field(1.0, gt=0, description="How often the tokens file is checked for changes")
    open_reflection: bool = Field(False, description="With a tokens file: serve reflection without a token")


class ServingSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 50051
    max_keys_per_request: int = Field(2000, ge=1)
    max_workers: int = Field(2, ge=1, description="Threads handling calls. One process runs Python on one core "
                             "at a time: more threads than that add queueing, not throughput; scale out with "
                             "processes")
    max_in_flight: int = Field(2, ge=1, description="Calls accepted at once; beyond it RESOURCE_EXHAUSTED at once. "
                               "Keep it at max_workers, so an accepted call never waits for a thread")
    gil_switch_interval_ms: float = Field(0.5, gt=0, description="How long a busy thread may hold the GIL; short, "
                                          "so gRPC's poller refuses excess calls promptly under overload")
    cpus: list[int] = Field(default_factory=list, description=(
        "CPUs to pin the serving process to, e.g. [3]; empty: wherever the OS schedules it. One process per "
        "core, pinned, hands each call between gRPC's threads and the handler on one core, which cut p99 by "
        "10-20% on a 2-core machine (docs/benchmarks.md); give it a core nothing else is pinned to"))
    feature_log_queue: int = Field(10_000, ge=1, description=(
        "Responses waiting to be logged (feature logging). A request never waits for the log: when the queue is "
        "full, its record is dropped and counted in vahini_feature_log_dropped_total"))
    tls: ServingTlsSettings = Field(default_factory=ServingTlsSettings)
    auth: ServingAuthSettings = Field(default_factory=ServingAuthSettings)
    model_endpoints: dict[str, str] = Field(default_factory=dict, description=(
        "Names for model servers (KServe v2 gRPC), e.g. {\"ranker\": \"10.0.0.5:8001\"}: a model graph's "
        "score node may give such a name as its target, so one graph serves every environment"))


class ConsoleSettings(_Section):
    """The operator console (`vahini console`): a web application on the same settings.
    It takes TLS and the tokens file from serving.tls and serving.auth: a caller needs
    Console.Read to see its pages and Console.Operate to act (re-drive dead letters)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65_535)
    target: str | None = Field(None, description="The gRPC server `Try it` calls, host:port; default "
                               "serving.host:serving.port. The signed-in caller's token goes with each call, so "
                               "the server's own rights apply")
    target_ca_file: Path | None = Field(None, description="PEM CA of the gRPC server's certificate: TLS to it")
    metrics_endpoints: list[str] = Field(default_factory=list, description=(
        "The /metrics URLs of the workers and servers the Live page reads, e.g. "
        "[\"http://10.0.0.7:9100/metrics\"]; lag is read from the event log itself"))
    refresh_s: float = Field(2.0, gt=0, description="How often the Live page refreshes itself")
    dead_letters_shown: int = Field(200, ge=1, le=10_000, description="Newest dead letters the page lists")


class CacheSettings(_Section):
    """The feature cache (Redis/Dragonfly) as seen by readers and writers."""

    namespace: str = Field("vf", min_length=1, description="Prefix of every cache key: deployments (or tests) "
                           "that share one Redis must each have their own")
    timeout_ms: int = Field(25, ge=1, description="Cache socket timeout: a slower answer counts as an outage")
    probe_interval_s: float = Field(0.5, gt=0, description="While bypassed, how often to probe the cache")
    fence_ttl_s: float = Field(5.0, gt=0, description="Life of a writer's fence against older fills")
    epoch_poll_s: float = Field(1.0, gt=0, description="How often each process re-reads the cache epoch")


class ArchiveSettings(_Section):
    """The offline archive (`vahini ingest archive`) that training sets are built from."""

    url: str = Field("file://.vahini/archive", description="Where the archive's Parquet files go (file://PATH)")
    group: str = "vahini-archive"
    flush_rows: int = Field(200_000, ge=1, description="Rows and interactions buffered before files are written "
                                                       "and offsets committed")
    flush_interval_s: float = Field(60.0, gt=0, description="At most this long between a record's arrival and its "
                                                            "file: fewer, larger files with a longer interval")
    batch_size: int = Field(10_000, ge=1, description="Records per poll")


class VectorSettings(_Section):
    """Vector indexes (registry `indexes:`; docs/vector-search.md)."""

    store: str | None = Field(None, description="Where index cells live; default: the feature store's engine "
                              "(on SQLite, vectors.db beside its file)")
    connectivity: int = Field(32, ge=2, le=256, description="Embedded (usearch HNSW): links per node")
    expansion_add: int = Field(200, ge=1, description="Embedded: candidates weighed when a vector is added")
    expansion_search: int = Field(512, ge=1, description="Embedded: candidates weighed per search; higher finds "
                                  "more of the true nearest at more CPU (docs/design-vector-search.md)")
    write_concurrency: int = Field(2, ge=1, description="Cassandra: vector writes in flight per process. Cassandra "
                                   "5.0.6 fails a write past three at once per node and index (CASSANDRA-21644): "
                                   "raise it only on a version with the fix")
    max_k: int = Field(1000, ge=1, le=1000, description="Largest k a search may ask for (Cassandra's own limit "
                       "is 1000)")


class InteractionSettings(_Section):
    """The interaction store: cold tier, session-driven hot tier, and its worker."""

    hot_tier: str = Field("sqlite:///.vahini/interactions-hot.db",
                          description="Hot tier URL (redis://, rediss:// or sqlite:///). It holds interactions "
                                      "not yet durable: on Redis, use maxmemory-policy noeviction")
    cold_store: str | None = Field(None, description="Cold tier URL; default: the feature store's engine "
                                                     "(its keyspace, or interactions.db beside its SQLite file)")
    namespace: str = Field("ih", min_length=1, description="Prefix of every hot-tier key")
    group: str = "vahini-interactions"
    inactivity_timeout_s: float = Field(1800.0, gt=0, description="A session with no event of its user for "
                                                                  "this long ends: flushed, then evicted")
    checkpoint_interval_s: float = Field(60.0, gt=0, description="Open sessions' new interactions are flushed "
                                                                 "at least this often, bounding a replay")
    max_per_type: int = Field(500, ge=1, description="Interactions kept per user and type (cold and hot)")
    retention_days: int = Field(180, ge=1, description="Interactions expire this long after their event time")
    bucket_days: int = Field(30, ge=1, description="Width of a cold-tier partition in time")
    max_read_limit: int = Field(1000, ge=1, description="Largest `limit` a read may ask for")
    batch_size: int = Field(10_000, ge=1, description="Max events per worker batch. Draining a backlog, a larger "
                            "batch writes a user's window row once for more of their events (2,000 to 10,000: "
                            "~1.6x the events/s, docs/benchmarks.md). A worker that keeps up is not held back: "
                            "a poll returns what came within 0.2 s")
    window_fine_bucket_s: int = Field(60, ge=1, le=3600, description="Bucket of windowed counts up to 6 h "
                                      "long: an event leaves its window at a bucket's edge, up to one bucket early")
    window_coarse_bucket_s: int = Field(3600, ge=60, le=86_400, description="Bucket of longer windows (24 h, 7 d)")
    window_state_interval_s: float = Field(5.0, ge=0, description="A user's window state is saved at least this "
                                           "often (and whenever the worker has no new events); until then the "
                                           "commit is held at the user's oldest event not in a saved state, so a "
                                           "crash replays at most this much. 0: saved with every batch")


def secret_value(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    """A secret given inline or, as container platforms mount them, in a file."""
    if file is not None:
        try:
            return Path(file).read_text().strip()
        except OSError as exc:
            raise BadSettings(f"{what}: cannot read {file}: {exc.strerror}") from None
    return value.get_secret_value() if value is not None else None


class RedisSettings(_Section):
    """Credentials and TLS for every Redis connection: the feature cache and the
    interaction hot tier. TLS is on for rediss:// URLs."""

    username: str | None = Field(None, description="ACL user (default: the default user)")
    password: SecretStr | None = Field(None, description="Its password; never printed or logged")
    password_file: Path | None = Field(None, description="A file holding the password (wins over password)")
    ca_file: Path | None = Field(None, description="PEM CA that signed Redis's certificate (rediss://)")
    cert_file: Path | None = Field(None, description="PEM client certificate, if Redis requires one")
    key_file: Path | None = Field(None, description="PEM key of cert_file")

    def client_options(self) -> dict:
        """Keyword arguments for redis.Redis.from_url."""
        options: dict = {"username": self.username,
                         "password": secret_value(self.password, self.password_file, "redis.password_file")}
        files = {"ssl_ca_certs": self.ca_file, "ssl_certfile": self.cert_file, "ssl_keyfile": self.key_file}
        options.update({k: str(v) for k, v in files.items() if v is not None})
        return {k: v for k, v in options.items() if v is not None}


class ZooKeeperSettings(_Section):
    """The registry's access in ZooKeeper (digest ACLs). A process with a username
    authenticates as it; znodes it creates (`vahini apply`) get its user as the
    only writer, readable by `readers` (or by anyone when that is empty)."""

    username: str | None = Field(None, description="Digest user this process authenticates as")
    password: SecretStr | None = Field(None, description="Its password; never printed or logged")
    password_file: Path | None = Field(None, description="A file holding the password (wins over password)")
    readers: list[str] = Field(default_factory=list, description=(
        "Digest ids allowed to read the registry, as user:base64(sha1(user:password)) (kazoo.security."
        "make_digest_acl_credential); empty: anyone may read"))

    def credentials(self) -> tuple[str, str] | None:
        if self.username is None:
            return None
        return self.username, secret_value(self.password, self.password_file, "zookeeper.password_file") or ""


class CassandraSettings(_Section):
    username: str | None = None
    password: SecretStr | None = Field(None, description="With username: PasswordAuthenticator credentials")
    password_file: Path | None = Field(None, description="A file holding the password (wins over password)")
    ca_file: Path | None = Field(None, description="PEM CA that signed the nodes' certificates: client-to-node "
                                 "TLS on, with the node's address checked against its certificate")
    cert_file: Path | None = Field(None, description="PEM client certificate, for nodes that require one")
    key_file: Path | None = Field(None, description="PEM key of cert_file")
    replication_factor: int = 1
    local_dc: str | None = None
    consistency: str = "LOCAL_QUORUM"
    batch_rows: int = Field(250, ge=1, le=65_535, description="Rows per unlogged batch (same primary replica), within "
                            "batch_bytes; the nodes' batch_size_warn_threshold must be above batch_bytes")
    batch_bytes: int = Field(32 * 1024, ge=1024, description="Max payload bytes per batch")
    compression: bool = Field(False, description="lz4 on the client link: costs CPU per request; worth it "
                              "only across a slow network")
    protocol_version: int = Field(4, ge=3, le=5, description="Native protocol version: 4 is what ScyllaDB speaks; "
                                  "Cassandra's 5 adds per-frame checksums that the driver computes in Python, "
                                  "about 1.5% of an ingest worker's CPU")
    hedge_reads: bool = Field(True, description="Send a read that one replica has not answered within the reads' "
                              "observed latency percentile to the next replica too; the first answer wins. Reads "
                              "only: writes are never hedged (docs/operations.md)")
    hedge_percentile: float = Field(99.0, gt=50, lt=100, description="Of the latencies of reads one replica "
                                    "answered alone: how long a read waits before its hedge")
    hedge_min_delay_ms: float = Field(2.0, ge=0, description="Never hedge sooner than this")
    hedge_max_delay_ms: float = Field(100.0, gt=0, description="Never wait longer than this before hedging, "
                                      "whatever the observed latency")
    hedge_max_extra: int = Field(2, ge=1, le=5, description="Extra replicas one read may be sent to")
    heartbeat_interval_s: float = Field(5.0, gt=0, description="A node that sent nothing this long gets a "
                                        "heartbeat (the driver's default is 30 s)")
    heartbeat_timeout_s: float = Field(5.0, gt=0, description="A heartbeat unanswered this long closes the "
                                       "connection and marks the node down: a hung node stops getting requests")
    reconnect_max_delay_s: float = Field(30.0, gt=0, description="A node marked down is tried again at most "
                                         "this far apart (exponential from 1 s)")
    connect_timeout_s: float = Field(5.0, gt=0, description="How long opening a connection to a node may take. "
                                     "A hung node accepts TCP but never answers the handshake, and each attempt to "
                                     "reconnect to it holds one of the driver's executor threads this long")
    executor_threads: int = Field(8, ge=2, le=64, description="The driver's threads for retries, reconnections "
                                  "and pool changes (its default is 2: two reconnections to a hung node would "
                                  "hold every retry back until they time out)")
    speculative_retry: str = Field("auto", description="The tables' speculative_retry, set when a process creates "
                                   "or finds them: how long a coordinator waits for a replica before asking another. "
                                   "'auto': MIN(99p,50ms) on Cassandra, left alone on ScyllaDB (which has no MIN); "
                                   "'keep': never changed; else any CQL value, such as '50ms' or '99p'")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VAHINI_", env_nested_delimiter="__", extra="forbid")

    event_log: str = "sqlite:///.vahini/events.db"
    feature_store: str = "sqlite:///.vahini/features.db"
    feature_cache: str = Field("sqlite:///.vahini/hot.db", description=(
        "The cache in front of the feature store (the interaction store's session tier is "
        "interactions.hot_tier)"))
    hot_tier: str | None = Field(None, description="The old name of feature_cache, still read for one release, "
                                 "with a warning")
    config_store: str = "file://.vahini/config"
    kafka_session_timeout_ms: int = Field(15_000, ge=1000, description=(
        "A worker unheard-of this long loses its partitions to the others. Keep it a few seconds above "
        "the brokers' broker.session.timeout.ms: a group-coordinator failover then costs no rebalance "
        "(docs/operations.md)"))
    kafka_group_instance_id: str | None = Field(None, min_length=1, description=(
        "Static group membership: an id stable across restarts and unique to this worker in its group, "
        "e.g. the pod name. A restart within the session timeout keeps its partitions, no rebalance"))
    kafka: dict[str, str | int | float | bool | SecretStr] = Field(
        default_factory=dict,
        description="Extra librdkafka properties for every Kafka client, e.g. security.protocol, "
                    "sasl.mechanisms, sasl.username, sasl.password, ssl.ca.location. Properties whose "
                    "name holds 'password' or 'secret' are kept as secrets: never printed or logged")
    kafka_files: dict[str, Path] = Field(default_factory=dict, description=(
        "librdkafka properties read from files, as container platforms mount secrets, e.g. "
        "{\"sasl.password\": \"/run/secrets/kafka-password\"}"))
    metrics_port: int = Field(0, ge=0, description="Prometheus /metrics port; 0 = off")
    fast_paths: bool = Field(True, description=(
        "Run the fast paths: the compiled loops and encoders (interaction reader, window step, CQL encoders, "
        "batch and read loops) and the pinned library internals (fastavro's _read_data and the own FeatureUpdate "
        "reader, scylla-driver's pre-encoded batches and token-ring table, the hiredis-packed Redis wire). false "
        "runs the Python code and the libraries' public APIs each stands in for: the same results at several "
        "times the CPU (an escape hatch for a library upgrade or a compiled module in doubt)"))
    compiled_ingest: bool | None = Field(None, description="The old name of fast_paths, still read for one release, "
                                                           "with a warning")
    log_level: str = "INFO"
    topics: TopicSettings = TopicSettings()
    ingest: IngestSettings = IngestSettings()
    serving: ServingSettings = ServingSettings()
    cassandra: CassandraSettings = CassandraSettings()
    cache: CacheSettings = CacheSettings()
    interactions: InteractionSettings = InteractionSettings()
    archive: ArchiveSettings = ArchiveSettings()
    vectors: VectorSettings = VectorSettings()
    console: ConsoleSettings = ConsoleSettings()
    redis: RedisSettings = RedisSettings()
    zookeeper: ZooKeeperSettings = ZooKeeperSettings()

    @model_validator(mode="after")
    def _read_the_old_name_of_feature_cache(self) -> "Settings":
        if self.hot_tier is None:
            return self
        if "feature_cache" not in self.model_fields_set:
            self.feature_cache = self.hot_tier
        elif self.feature_cache == self.hot_tier:
            return self  # both names, one value: set for checkouts from before the rename
        warnings.warn(f"the setting hot_tier (VAHINI_HOT_TIER) is now feature_cache (VAHINI_FEATURE_CACHE); "
                      f"the old name goes in the next release. Using feature_cache = {self.feature_cache!r}",
                      FutureWarning, stacklevel=2)
        return self

    @model_validator(mode="after")
    def _read_the_old_name_of_fast_paths(self) -> "Settings":
        if self.compiled_ingest is None:
            return self
        if "fast_paths" not in self.model_fields_set:
            self.fast_paths = self.compiled_ingest
        warnings.warn(f"the setting compiled_ingest (VAHINI_COMPILED_INGEST) is now fast_paths (VAHINI_FAST_PATHS) "
                      f"and covers every fast path; the old name goes in the next release. Using fast_paths = "
                      f"{self.fast_paths}", FutureWarning, stacklevel=2)
        return self

    @field_validator("kafka", mode="before")
    @classmethod
    def _hide_kafka_secrets(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: SecretStr(str(v)) if _is_secret(k) and not isinstance(v, SecretStr) else v
                for k, v in value.items()}

    def kafka_properties(self) -> dict[str, str | int | float | bool]:
        """The librdkafka properties with secrets revealed, for the client only."""
        properties: dict[str, str | int | float | bool] = {
            k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in self.kafka.items()}
        for name, path in self.kafka_files.items():
            properties[name] = secret_value(None, path, f"kafka_files.{name}") or ""
        return properties

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings, env_settings,
                                   dotenv_settings, file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return _sources(settings_cls, init_settings, env_settings, os.environ.get(SETTINGS_FILE_ENV))


def _is_secret(property_name: str) -> bool:
    return "password" in property_name or "secret" in property_name


def _sources(settings_cls, init_settings, env_settings, toml_file: str | None) -> tuple:
    sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
    if toml_file:
        sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
    return tuple(sources)


def load_settings(settings_file: str | None = None, **overrides: Any) -> Settings:
    """Build the settings once at start-up. Precedence: `overrides` (command-line flags),
    VAHINI_* environment variables, the TOML `settings_file` (or $VAHINI_SETTINGS_FILE), defaults."""
    path = settings_file or os.environ.get(SETTINGS_FILE_ENV)
    if path and not Path(path).is_file():
        raise FileNotFoundError(f"settings file not found: {path}")

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                       file_secret_settings):
            return _sources(settings_cls, init_settings, env_settings, path)

    return _FromFile(**overrides)
