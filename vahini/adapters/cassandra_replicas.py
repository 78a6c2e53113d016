"""The primary replica of a partition, found fast enough to run once per written row:
writers group rows by it into batches sent straight to that replica (token-aware)."""

from __future__ import annotations

from bisect import bisect_left
from typing import Callable

from cassandra.metadata import NoMurmur3

from vahini import fast_paths


class PrimaryReplicas:
    """The primary replica of a partition, as `Metadata.get_replicas(keyspace, key)[0]`
    gives it, from a table of the driver's token ring kept as plain ints: the driver
    compares Token objects in Python on every bisection, which cost more than the rest
    of batching a row. The table is rebuilt when the driver replaces its token map or
    the keyspace's replica map (a topology or replication change)."""

    def __init__(self, cluster, keyspace: str):
        self._cluster, self._keyspace = cluster, keyspace
        self._built_from: tuple = (None, None)
        self._lookup: Callable[[bytes], object] = _no_replica

    def lookup(self) -> Callable[[bytes], object]:
        """A function from a routing key to its primary replica's Host (None when the
        driver has no token map), valid for the current ring: take one per batch. With
        fast paths off, the driver's public `Metadata.get_replicas` answers each call."""
        if not fast_paths.enabled():
            return self._public_lookup
        token_map = self._cluster.metadata.token_map
        if token_map is None:
            return _no_replica
        built_map, built_replicas = self._built_from
        if token_map is not built_map or token_map.tokens_to_hosts_by_ks.get(self._keyspace) is not built_replicas:
            self._lookup = self._build(token_map)
        return self._lookup

    def _public_lookup(self, routing_key: bytes):
        replicas = self._cluster.metadata.get_replicas(self._keyspace, routing_key)
        return replicas[0] if replicas else None

    def _build(self, token_map) -> Callable[[bytes], object]:
        ring = token_map.ring
        replicas = [token_map.get_replicas(self._keyspace, token) for token in ring]  # builds the replica map if absent
        self._built_from = (token_map, token_map.tokens_to_hosts_by_ks.get(self._keyspace))
        hash_of = token_map.token_class.hash_fn
        try:
            hash_of(b"")
        except NoMurmur3:  # the driver then routes without tokens too
            return _no_replica
        if not ring or not all(replicas):
            return _no_replica
        tokens, owners = [token.value for token in ring], [hosts[0] for hosts in replicas]

        def primary(routing_key: bytes):
            at = bisect_left(tokens, hash_of(routing_key))
            return owners[at if at < len(tokens) else 0]
        return primary


def _no_replica(_routing_key: bytes) -> None:
    return None
