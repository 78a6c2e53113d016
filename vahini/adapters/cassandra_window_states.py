"""Window states on ScyllaDB or Apache Cassandra: one row per user, with a TTL."""

from __future__ import annotations

from typing import Mapping, Sequence

from vahini.adapters.cassandra_session import CassandraSession

TABLE = """
CREATE TABLE IF NOT EXISTS {ks}.interaction_windows (user_id text PRIMARY KEY, state blob)
"""


class CassandraWindowStates:
    def __init__(self, connection: CassandraSession):
        self._connection = connection
        self._select = connection.prepare("SELECT user_id, state FROM {ks}.interaction_windows WHERE user_id = ?")
        self._insert = connection.prepare(
            "INSERT INTO {ks}.interaction_windows (user_id, state) VALUES (?, ?) USING TTL ?")

    def read_many(self, users: Sequence[str], timeout_s: float | None = None) -> dict[str, bytes]:
        out = {}
        for rows in self._connection.run([(self._select, (u,)) for u in users], timeout_s, hedged=True):
            for user, state in rows:
                out[user] = state
        return out

    def write_many(self, states: Mapping[str, bytes], ttl_s: int, timeout_s: float | None = None) -> None:
        self._connection.run([(self._insert, (u, s, ttl_s)) for u, s in states.items()], timeout_s)

    def close(self) -> None:
        self._connection.close()
