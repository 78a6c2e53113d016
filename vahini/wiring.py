"""The one place where settings choose adapters. Each backend is imported only
when chosen, so the embedded setup never loads a server client."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from vahini import fast_paths
from vahini.errors import BadSettings
from vahini.feature_cache import FeatureCache
from vahini.ports.config_store import ConfigStore
from vahini.ports.event_log import EventLog
from vahini.ports.feature_store import FeatureStore
from vahini.ports.hot_tier import HotTier
from vahini.ports.vector_index import VectorIndexStore
from vahini.logs import get_logger
from vahini.settings import Settings, secret_value

if TYPE_CHECKING:
    from vahini.adapters.cassandra_hedging import HedgeOptions

log = get_logger(__name__)


class UnknownBackend(BadSettings):
    pass


def _scheme(url: str, setting: str, allowed: tuple[str, ...]) -> str:
    scheme = urlparse(url).scheme
    if scheme not in allowed:
        raise UnknownBackend(f"{setting}={url!r}: scheme must be one of {', '.join(s + '://' for s in allowed)}")
    return scheme


def _sqlite_path(url: str) -> str:
    # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy spells them
    return url[len("sqlite:///"):] or ":memory:"


def _hosts_port(netloc: str, default_port: int) -> tuple[list[str], int]:
    hosts, port = [], default_port
    for part in netloc.split(","):
        host, _, p = part.partition(":")
        hosts.append(host)
        port = int(p) if p else port
    return hosts, port


def use_fast_paths(settings: Settings) -> None:
    """Apply `settings.fast_paths` to the process (vahini.fast_paths). Every builder here
    calls it first, so a program runs its backends, codecs and loops as its settings say."""
    if settings.fast_paths == fast_paths.enabled():
        return
    fast_paths.use(settings.fast_paths)
    if not settings.fast_paths:
        log.warning("fast_paths_off", detail="fast_paths = false: Python code and the libraries' public APIs run in "
                    "place of the compiled loops and pinned internals, at several times the CPU per event")


def event_log(settings: Settings) -> EventLog:
    use_fast_paths(settings)
    url = settings.event_log
    if _scheme(url, "event_log", ("sqlite", "kafka")) == "sqlite":
        from vahini.adapters.sqlite_event_log import SqliteEventLog

        return SqliteEventLog(_sqlite_path(url), settings.topics.partitions, settings.kafka_session_timeout_ms)
    from vahini.adapters.kafka_event_log import KafkaEventLog

    return KafkaEventLog(urlparse(url).netloc, settings.topics.partitions, settings.topics.replication_factor,
                         settings.kafka_session_timeout_ms, extra=settings.kafka_properties(),
                         group_instance_id=settings.kafka_group_instance_id)


def feature_store(settings: Settings) -> FeatureStore:
    use_fast_paths(settings)
    url = settings.feature_store
    if _scheme(url, "feature_store", ("sqlite", "cassandra", "scylla")) == "sqlite":
        from vahini.adapters.sqlite_feature_store import SqliteFeatureStore

        return SqliteFeatureStore(_sqlite_path(url))
    from vahini.adapters.cassandra_feature_store import TABLE, CassandraFeatureStore

    c = settings.cassandra
    return CassandraFeatureStore(_cassandra(settings, url, [TABLE]), batch_rows=c.batch_rows, batch_bytes=c.batch_bytes)


def _cassandra(settings: Settings, url: str, tables: list[str]):
    from vahini.adapters.cassandra_session import CassandraOptions, CassandraSession

    parsed = urlparse(url)
    hosts, port = _hosts_port(parsed.netloc, 9042)
    c = settings.cassandra
    password = secret_value(c.password, c.password_file, "cassandra.password_file")
    credentials = (c.username, password) if c.username and password is not None else None
    tls = (c.ca_file, c.cert_file, c.key_file) if c.ca_file else None
    return CassandraSession(CassandraOptions(hosts, port, parsed.path.strip("/") or "vahini", c.replication_factor,
                                             c.local_dc, c.consistency, settings.ingest.write_concurrency,
                                             credentials=credentials, tls=tls, compression=c.compression,
                                             protocol_version=c.protocol_version, hedge=_hedge(c),
                                             heartbeat_interval_s=c.heartbeat_interval_s,
                                             heartbeat_timeout_s=c.heartbeat_timeout_s,
                                             reconnect_max_delay_s=c.reconnect_max_delay_s,
                                             connect_timeout_s=c.connect_timeout_s, executor_threads=c.executor_threads,
                                             speculative_retry=c.speculative_retry), tables)


def _hedge(c) -> "HedgeOptions | None":
    from vahini.adapters.cassandra_hedging import HedgeOptions

    if not c.hedge_reads:
        return None
    return HedgeOptions(c.hedge_percentile, c.hedge_min_delay_ms / 1000, c.hedge_max_delay_ms / 1000,
                        initial_delay_s=min(0.05, c.hedge_max_delay_ms / 1000), max_hedges=c.hedge_max_extra)


def hot_tier(settings: Settings) -> HotTier:
    use_fast_paths(settings)
    url = settings.feature_cache
    scheme = _scheme(url, "feature_cache", ("sqlite", "memory", "redis", "rediss"))
    if scheme == "sqlite":
        from vahini.adapters.sqlite_hot_tier import SqliteHotTier

        return SqliteHotTier(_sqlite_path(url))
    if scheme == "memory":
        from vahini.adapters.memory_hot_tier import MemoryHotTier

        return MemoryHotTier()
    from vahini.adapters.redis_hot_tier import RedisHotTier

    return RedisHotTier(url, timeout_s=settings.cache.timeout_ms / 1000, **_redis_options(settings, url))


def _redis_options(settings: Settings, url: str) -> dict:
    """Credentials for every Redis URL; certificate files only for rediss:// (TLS)."""
    options = settings.redis.client_options()
    return options if url.startswith("rediss://") else {k: v for k, v in options.items() if not k.startswith("ssl_")}


def feature_cache(settings: Settings, store: FeatureStore) -> FeatureCache:
    """The feature cache over the configured hot tier; closing it closes the tier."""
    return FeatureCache(hot_tier(settings), store, settings.cache)


def config_store(settings: Settings) -> ConfigStore:
    use_fast_paths(settings)
    url = settings.config_store
    if _scheme(url, "config_store", ("file", "zk")) == "file":
        from vahini.adapters.directory_config_store import DirectoryConfigStore

        return DirectoryConfigStore(url[len("file://"):])
    from vahini.adapters.zookeeper_config_store import ZooKeeperConfigStore

    parsed = urlparse(url)
    auth = settings.zookeeper.credentials()
    return ZooKeeperConfigStore(parsed.netloc, parsed.path or "/vahini", auth=auth, acl=_zookeeper_acl(settings, auth))


def _zookeeper_acl(settings: Settings, auth: tuple[str, str] | None) -> list | None:
    """With credentials: this user may do everything, readers (or anyone) only read."""
    if auth is None:
        return None
    from kazoo.security import ACL, Id, Permissions, make_digest_acl

    readers = [ACL(Permissions.READ, Id("digest", r)) for r in settings.zookeeper.readers] or \
        [ACL(Permissions.READ, Id("world", "anyone"))]
    return [make_digest_acl(*auth, all=True), *readers]


def interaction_hot_tier(settings: Settings, timeout_s: float = 2.0):
    """The interaction hot tier. Readers pass a short `timeout_s` (a slow tier is bypassed);
    the worker keeps the default, since it must not give up on data that is not durable."""
    use_fast_paths(settings)
    url = settings.interactions.hot_tier
    if _scheme(url, "interactions.hot_tier", ("sqlite", "redis", "rediss")) == "sqlite":
        from vahini.adapters.sqlite_interaction_tier import SqliteInteractionTier

        return SqliteInteractionTier(_sqlite_path(url))
    from vahini.adapters.redis_interaction_tier import RedisInteractionTier

    return RedisInteractionTier(url, settings.interactions.namespace, timeout_s, **_redis_options(settings, url))


def cold_interactions(settings: Settings):
    """The cold tier, by default on the feature store's engine."""
    use_fast_paths(settings)
    s = settings.interactions
    url = s.cold_store or settings.feature_store
    if _scheme(url, "interactions.cold_store", ("sqlite", "cassandra", "scylla")) == "sqlite":
        from pathlib import Path

        from vahini.adapters.sqlite_cold_interactions import SqliteColdInteractions

        path = _sqlite_path(url) if s.cold_store else str(Path(_sqlite_path(url)).with_name("interactions.db"))
        return SqliteColdInteractions(path, s.retention_days * 86_400)
    from vahini.adapters.cassandra_cold_interactions import TABLE, CassandraColdInteractions

    c = settings.cassandra
    return CassandraColdInteractions(_cassandra(settings, url, [TABLE]), s.retention_days * 86_400, s.bucket_days,
                                     batch_rows=c.batch_rows, batch_bytes=c.batch_bytes)


def vector_index(settings: Settings) -> VectorIndexStore:
    """The vector indexes' cells and search, by default on the feature store's engine."""
    use_fast_paths(settings)
    v = settings.vectors
    url = v.store or settings.feature_store
    if _scheme(url, "vectors.store", ("sqlite", "cassandra", "scylla")) == "sqlite":
        from pathlib import Path

        from vahini.adapters.sqlite_usearch_index import SqliteUsearchIndex, UsearchOptions

        path = _sqlite_path(url) if v.store else str(Path(_sqlite_path(url)).with_name("vectors.db"))
        return SqliteUsearchIndex(path, UsearchOptions(v.connectivity, v.expansion_add, v.expansion_search))
    from vahini.adapters.cassandra_vector_index import CassandraVectorIndex

    return CassandraVectorIndex(_cassandra(settings, url, []), v.write_concurrency)


def archive(settings: Settings):
    """The offline archive (needs the `offline` extra: pyarrow)."""
    use_fast_paths(settings)
    url = settings.archive.url
    _scheme(url, "archive.url", ("file",))
    from vahini.adapters.parquet_archive import ParquetArchive

    parsed = urlparse(url)
    return ParquetArchive(parsed.netloc + parsed.path)
