"""Redis calls on the hot paths (the Model Proxy's reads, the ingest worker's
fences), packed by hiredis straight from their arguments.

redis-py packs each argument of a command in Python (an encoder call and several
type checks per argument), and its pool takes a lock and polls the socket on
every checkout; for a Model Proxy request's 200-key MGET that cost as much as the
rest of its cache read. `Wire` packs with hiredis in C, sends every command of a
call in one write, reads the replies in order, and keeps its own idle connections
(list pop and append are atomic). A connection the server dropped (a restart) is
retried once on a new one, and the other idle ones are dropped with it. A timeout
is not retried: a hung server costs one timeout, and the callers' circuit
breakers take it from there.

With fast paths off (`vahini.fast_paths`), `wire_for` gives PublicWire instead: the
same calls through redis-py's public pipelines and scripts."""

from __future__ import annotations

from typing import Callable, Sequence

import hiredis
import redis

from vahini import fast_paths
from vahini.codecs import loops

compiled = fast_paths.bind(__name__, "compiled", loops.built)  # None while fast paths are off


class Wire:
    def __init__(self, client: redis.Redis):
        self._client = client
        pool = client.connection_pool
        self._new_connection = lambda: pool.connection_class(**pool.connection_kwargs)
        self._idle: list = []

    def call(self, commands: Sequence[Sequence]) -> list:
        """The raw replies of `commands` (each a tuple of str, bytes or int arguments), in
        order. Raises redis.RedisError (an error reply included) as redis-py would."""
        return self.send(commands)()

    def send(self, commands: Sequence[Sequence]) -> Callable[[], list]:
        """`call` in two steps: the commands are written now, and their replies read when
        the returned function is called (once), so a caller can wait on another peer
        meanwhile. Dropping the function unread closes its connection."""
        if not commands:
            return list
        packed = b"".join([_packed(c) for c in commands])
        try:
            return _Pending(self, self._written(packed), packed, len(commands), retry=True)
        except redis.ConnectionError:  # the server dropped its connections: the idle ones are stale too
            self.close()
            return _Pending(self, self._written(packed), packed, len(commands), retry=False)

    def run_script(self, script, keys: Sequence[str], args: Sequence) -> object:
        """EVALSHA of a script registered with client.register_script, loaded on first
        use: the write path fences thousands of keys a call."""
        return self.send_script(script, [(keys, args)])()[0]

    def send_script(self, script, calls: Sequence[tuple[Sequence[str], Sequence]]) -> Callable[[], list]:
        """`send` of one EVALSHA of `script` per (keys, args). The server may not have the
        script (first use, or restarted empty): then it is loaded when the replies are
        read, and the calls are made again."""
        commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls]
        pending = self.send(commands)

        def replies() -> list:
            try:
                return pending()
            except redis.exceptions.NoScriptError:
                self._client.script_load(script.script)
                return self.call(commands)
        return replies

    def close(self) -> None:
        while self._idle:
            self._idle.pop().disconnect()

    def _written(self, packed: bytes):
        """A connection (idle, else new) with `packed` written to it."""
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._new_connection()
        try:
            connection.send_packed_command([packed], check_health=False)
        except BaseException:
            connection.disconnect()
            raise
        return connection

    def _replies(self, connection, count: int) -> list:
        try:
            out = [connection.read_response() for _ in range(count)]
        except BaseException:  # replies may be left unread (an error reply), or the socket is gone
            connection.disconnect()
            raise
        self._idle.append(connection)
        return out


def _packed(command: Sequence) -> bytes:
    if compiled is not None:  # hiredis formats each argument's length with sprintf: 6% of a Model Proxy request
        packed = compiled.redis_command(command)
        if packed is not None:
            return packed
    return hiredis.pack_command(tuple(command))


class _Pending:
    """Replies not read yet, on a connection of their own until they are."""

    __slots__ = ("_wire", "_connection", "_packed", "_count", "_retry")

    def __init__(self, wire: Wire, connection, packed: bytes, count: int, retry: bool):
        self._wire, self._connection, self._packed, self._count, self._retry = wire, connection, packed, count, retry

    def __call__(self) -> list:
        connection, self._connection = self._connection, None
        try:
            return self._wire._replies(connection, self._count)
        except redis.ConnectionError:  # a connection the server dropped may only show when read
            if not self._retry:
                raise
            self._wire.close()
            return self._wire._replies(self._wire._written(self._packed), self._count)

    def __del__(self) -> None:
        # Unread replies would answer the next call on this connection: it is closed instead.
        # The driver's connection sits in reference cycles: its own collection may come late.
        if self._connection is not None:
            self._connection.disconnect()


class PublicWire:
    """Wire's calls on redis-py's public API alone, the path while fast paths are off
    (`vahini.fast_paths`): pipelines, and scripts run as registered Script objects.
    Replies are raw, as Wire reads them (a client on the same pool whose response
    callbacks are all identity). `send` runs the commands at once, so nothing overlaps,
    and its replies come from one snapshot taken when it is called, as Wire's do."""

    def __init__(self, client: redis.Redis):
        self._raw = redis.Redis(connection_pool=client.connection_pool)
        for command in list(self._raw.response_callbacks):
            self._raw.set_response_callback(command, _as_read)

    def call(self, commands: Sequence[Sequence]) -> list:
        if not commands:
            return []
        if commands[0] == ("MULTI",) and commands[-1] == ("EXEC",):
            inner = commands[1:-1]
            transaction = self._raw.pipeline(transaction=True)
            for command in inner:
                transaction.execute_command(*command)
            return [b"OK", *[b"QUEUED"] * len(inner), transaction.execute(raise_on_error=False)]
        pipe = self._raw.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return pipe.execute()

    def send(self, commands: Sequence[Sequence]) -> Callable[[], list]:
        replies = self.call(commands)
        return lambda: replies

    def run_script(self, script, keys: Sequence[str], args: Sequence) -> object:
        return self.send_script(script, [(keys, args)])()[0]

    def send_script(self, script, calls: Sequence[tuple[Sequence[str], Sequence]]) -> Callable[[], list]:
        pipe = self._raw.pipeline(transaction=False)
        for keys, args in calls:
            script(keys=list(keys), args=list(args), client=pipe)  # the pipeline loads it if the server lacks it
        replies = pipe.execute() if calls else []
        return lambda: replies

    def close(self) -> None:
        """Nothing of its own to close: its connections are the client's pool's."""


def _as_read(response, **_options):
    return response


def wire_for(client: redis.Redis) -> Wire | PublicWire:
    """The wire for `client`: Wire with fast paths on, PublicWire with them off."""
    return Wire(client) if fast_paths.enabled() else PublicWire(client)
