"""The interaction worker: sessions drive a user's history into and out of the hot tier.

    START        load the user's recent history from the cold tier into the hot tier
    interaction  session open: append to the hot tier (dirty); else write to the cold tier
    END, or no event of the user for inactivity_timeout_s:
                 flush the dirty interactions to the cold tier, then evict the user

The event log is the write-ahead log. Each partition commits the offset of its
oldest interaction that lives only in the hot tier (or the next offset, when
there is none), so any crash, rebalance or hot-tier loss is repaired by replaying
from the commit: every step is idempotent. A checkpoint every
checkpoint_interval_s flushes long sessions, so that replay stays short. The
worker is single-threaded: the tracker and the checkpoint run between polls, so
nothing else touches a user the worker owns.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from vahini.codecs.avro import INTERACTION, SESSION_EVENT, AvroCodec
from vahini.codecs.interaction_reader import InteractionReader
from vahini.errors import HotTierLost, InvalidEvent, Reason
from vahini.logs import get_logger
from vahini.ports.event_log import LogConsumer, LogProducer, Record, TopicPartition
from vahini.ports.interaction_store import (TYPES, ColdInteractions, HistoryQuery, InteractionHotTier, OpenSession,
                                            StoredInteraction)
from vahini.settings import InteractionSettings
from vahini.validation import EventLimits, check_interaction_ids
from vahini.streams import metrics
from vahini.streams.dead_letter import DeadLetterSink
from vahini.streams.retry import retry
from vahini.streams.windows import CountedEvent, WindowWriter

log = get_logger(__name__)


@dataclass
class InteractionStats:
    events: int = 0
    to_hot: int = 0
    to_cold: int = 0
    sessions_started: int = 0
    sessions_ended: int = 0
    flushes: int = 0
    cold_writes: int = 0
    dead_lettered: int = 0
    window_rows: int = 0
    started: float = field(default_factory=time.monotonic)


class InteractionWorker:
    def __init__(self, new_consumer: Callable[[], LogConsumer], dead_letters: LogProducer,
                 cold: ColdInteractions, hot: InteractionHotTier, codec: AvroCodec, settings: InteractionSettings,
                 dead_letter_topic: str, limits: EventLimits, backoff_max_s: float = 30.0,
                 clock: Callable[[], float] = time.time, windows: WindowWriter | None = None):
        self._new_consumer = new_consumer
        self._consumer = new_consumer()
        self._dead = DeadLetterSink(dead_letters, dead_letter_topic)
        self._cold = cold
        self._hot = hot
        self._codec = codec
        self._settings = settings
        self._limits = limits
        self._reader = InteractionReader(limits)
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._windows = windows
        self.stats = InteractionStats()
        self._stop = threading.Event()
        self._reset_state()
        self._generation = hot.generation()
        self._next_generation_check = 0.0
        self._next_checkpoint = time.monotonic() + settings.checkpoint_interval_s
        self._next_window_save = 0.0
        self._counted_topic: str | None = None

    def _reset_state(self) -> None:
        self._owned: set[TopicPartition] = set()
        self._next_offset: dict[TopicPartition, int] = {}
        self._unflushed: dict[TopicPartition, dict[str, int]] = {}  # user -> oldest offset held only in hot
        self._seen: dict[str, tuple[TopicPartition, int]] = {}     # open sessions: user -> (tp, last seen ms)
        self._idle_heap: list[tuple[int, str]] = []
        self._pending_cold: dict[str, list[StoredInteraction]] = {}  # by user, written before the commit
        self._buffered: dict[str, tuple[TopicPartition, int, list[StoredInteraction]]] = {}
        self._prefetched: dict[str, list[StoredInteraction]] = {}
        self._starting: dict[str, tuple[str, TopicPartition]] = {}  # user -> (session id, tp), opened together
        self._ending: dict[str, TopicPartition] = {}
        self._held: dict[str, Counter] = {}  # per open session loaded here: interactions held, by type
        self._counted: dict[str, list[CountedEvent]] = {}  # this batch's interactions, for the windowed counts
        self._pending_dead: list[tuple[Record, InvalidEvent]] = []
        self._committed: dict[TopicPartition, int] = {}
        self._hot_lost = False

    # -- loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> InteractionStats:
        self._stop = stop
        while not stop.is_set():
            records = self._poll()
            self._follow_assignment()
            if records:
                self._process(records)
            self._end_idle_sessions()
            self._checkpoint_if_due()
            if not self._finish_batch():
                break
            self._check_generation()
        return self.stats

    def _retry(self, what: str, action: Callable[[], None]) -> bool:
        return retry(what, action, self._stop, self._backoff_max_s)

    def _poll(self) -> list[Record]:
        got: list[Record] = []
        self._retry("poll", lambda: got.extend(self._consumer.poll_batch(self._settings.batch_size, 0.2)))
        return got

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- partitions ----------------------------------------------------------------
    def _follow_assignment(self) -> None:
        """Adopt the open sessions of partitions just assigned; forget those revoked
        (their new owner replays from the commit and adopts them in turn)."""
        current = set(self._consumer.assignment())
        if current != self._owned:
            self._committed.clear()  # a commit lost to the rebalance must be made again
        if self._windows is not None and self._owned - current:
            self._windows.forget({tp[1] for tp in self._owned - current})
        for tp in self._owned - current:
            self._unflushed.pop(tp, None)
            self._next_offset.pop(tp, None)
            for user in [u for u, (owner, _) in self._seen.items() if owner == tp]:
                del self._seen[user]
        for tp in current - self._owned:
            sessions: list[OpenSession] = []
            self._retry("adopt_sessions", lambda: sessions.extend(self._hot.sessions(tp[1])))
            for s in sessions:
                self._track(s.user_id, tp, s.last_seen_ms)
        self._owned = current

    def _track(self, user: str, tp: TopicPartition, seen_ms: int) -> None:
        """Mark `user` seen. The idle heap gets one entry per tracked user; a stale entry
        is pushed again with the newer time when it comes up (see _end_idle_sessions)."""
        if user not in self._seen:
            heapq.heappush(self._idle_heap, (seen_ms, user))
        self._seen[user] = (tp, seen_ms)
        metrics.OPEN_SESSIONS.set(len(self._seen))

    # -- one batch -----------------------------------------------------------------
    def _process(self, records: list[Record]) -> None:
        # Interactions of the current schema that pass their checks come read and checked
        # (StoredInteraction); every other message is read the general way, which says why.
        read = self._reader.read_many([r.value for r in records], self._now_ms())
        decoded = [(INTERACTION, item) if item is not None else self._decode(r) for r, item in zip(records, read)]
        self._prefetch_histories({e["user_id"] for name, e in decoded if name == SESSION_EVENT and e["type"] == "START"})
        for record, (name, event) in zip(records, decoded):
            tp = (record.topic, record.partition)
            self._next_offset[tp] = record.offset + 1
            self.stats.events += 1
            try:
                if isinstance(event, InvalidEvent):
                    raise event
                self._apply(name, event, record, tp)
            except InvalidEvent as exc:
                self._pending_dead.append((record, exc))
        self._apply_pending()
        self._prefetched.clear()
        metrics.INTERACTION_EVENTS.inc(len(records))

    def _decode(self, record: Record) -> tuple[str | None, dict | InvalidEvent]:
        try:
            return self._codec.decode(record.value)
        except InvalidEvent as exc:
            return None, exc

    def _prefetch_histories(self, users: set[str]) -> None:
        """The cold histories of users starting a session in this batch, read all at
        once: one round trip for the batch instead of one per START."""
        cap = self._settings.max_per_type
        queries = [HistoryQuery(u, (t,), cap) for u in sorted(users) for t in TYPES]
        results: list[list[StoredInteraction]] = []
        if queries:
            self._retry("load_history", lambda: results.extend(self._cold.read_many(queries)))
        for query, items in zip(queries, results):
            self._prefetched.setdefault(query.user_id, []).extend(items)

    def _apply(self, name: str | None, event: dict | StoredInteraction, record: Record, tp: TopicPartition) -> None:
        """Starts, appends and ends are applied together, in that order, at the end of the
        batch: one round trip each for all users. A user's own events keep their order:
        what is pending for the user is applied first when the order would matter."""
        if type(event) is StoredInteraction:  # read and checked already
            if event.user_id in self._ending:
                self._apply_pending()  # the user's END comes before this event
            self._interaction(event, record, tp)
            return
        user = event.get("user_id")
        if user in self._ending:
            self._apply_pending()  # the user's END comes before this event
        if name == INTERACTION:
            check_interaction_ids(event, self._limits, self._now_ms())
            self._interaction(StoredInteraction.of_event(event), record, tp)
        elif name == SESSION_EVENT:
            check_interaction_ids(event, self._limits, self._now_ms())
            if user in self._buffered or user in self._starting:
                self._apply_pending()  # what came before this session event is applied before it
            if event["type"] == "START":
                self._starting[user] = (event["session_id"], tp)
            else:
                self._end(user, event["session_id"], tp)
        else:
            raise InvalidEvent(Reason.WRONG_EVENT_TYPE, f"expected {INTERACTION} or {SESSION_EVENT}, got {name}")

    def _interaction(self, item: StoredInteraction, record: Record, tp: TopicPartition) -> None:
        """Buffered per user until the batch ends or a session event comes: then one
        round trip appends every user's interactions (see _append_buffered)."""
        buffered = self._buffered.setdefault(item.user_id, (tp, record.offset, []))
        buffered[2].append(item)
        self._counted.setdefault(item.user_id, []).append(  # a CountedEvent, as a plain tuple
            (record.partition, record.offset, item.type, item.category_id, item.event_time_ms))
        self._counted_topic = record.topic  # the interactions topic: window states keep its offsets

    def _append_buffered(self) -> None:
        """Append buffered interactions of users with an open session to the hot tier;
        the others go straight to the cold tier. Every open session of an owned partition
        is tracked (`_seen`: adopted on assignment, or started here), so only tracked
        users are tried; the hot tier still has the last word on whether one is open."""
        if not self._buffered:
            return
        buffered, self._buffered = self._buffered, {}
        now = self._now_ms()
        appended: set[str] = set()
        tracked = {user: (tp[1], items) for user, (tp, _, items) in buffered.items() if user in self._seen}
        if tracked:
            self._retry("hot_append", lambda: appended.update(self._hot.append_many(tracked, now)))
        for user, (tp, first_offset, items) in buffered.items():
            if user in appended:
                self._unflushed.setdefault(tp, {}).setdefault(user, first_offset)
                if user in self._held:
                    self._held[user].update(i.type for i in items)
                self._track(user, tp, now)
                self.stats.to_hot += len(items)
            else:
                self._pending_cold.setdefault(user, []).extend(items)  # no open session: straight to cold
                self.stats.to_cold += len(items)

    def _apply_pending(self) -> None:
        self._open_starting()
        self._append_buffered()
        self._close_ending()

    def _open_starting(self) -> None:
        """The batch's STARTs: one round trip touches the sessions already open, one loads
        the others with their histories."""
        if not self._starting:
            return
        starting, self._starting = self._starting, {}
        now = self._now_ms()
        open_already: set[str] = set()
        self._retry("hot_touch", lambda: open_already.update(self._hot.append_many(
            {user: (tp[1], ()) for user, (_, tp) in starting.items()}, now)))
        loads = [(OpenSession(user, session_id, tp[1], now), self._history_to_load(user))
                 for user, (session_id, tp) in starting.items() if user not in open_already]
        if loads:
            self._retry("hot_load", lambda: self._hot.load_many(loads))
        for session, history in loads:
            self._held[session.user_id] = Counter(i.type for i in history)
        self.stats.sessions_started += len(loads)
        metrics.SESSIONS.labels("started").inc(len(loads))
        for user, (_, tp) in starting.items():
            self._track(user, tp, now)

    def _history_to_load(self, user: str) -> list[StoredInteraction]:
        """The user's cold history, as prefetched for this batch unless something of the
        user reached the cold tier since (then read again)."""
        if user in self._prefetched and user not in self._pending_cold:
            return self._prefetched.pop(user)
        self._write_pending_cold()  # what this batch sent straight to cold belongs in the history loaded
        history: list[StoredInteraction] = []
        cap = self._settings.max_per_type
        self._retry("load_history", lambda: history.extend(
            item for t in TYPES for item in self._cold.read(HistoryQuery(user, (t,), cap))))
        return history

    def _end(self, user: str, session_id: str, tp: TopicPartition) -> None:
        """Ends are closed together at the end of the batch (or before the user's next event)."""
        if user not in self._seen:
            session: list = []
            self._retry("hot_session", lambda: session.append(self._hot.session(user)))
            if session[0] is None:
                metrics.SESSIONS.labels("end_without_session").inc()
                return
        self._ending[user] = tp

    def _close_ending(self) -> None:
        if self._ending:
            ending, self._ending = self._ending, {}
            self._close_sessions(ending, "ended")

    # -- flushing ------------------------------------------------------------------
    def _flush(self, users: dict[str, TopicPartition]) -> bool:
        """Write the users' dirty interactions to the cold tier, then mark them clean:
        three round trips to the hot tier and one batch of cold writes for all of them."""
        for user in users:
            self._prefetched.pop(user, None)  # the cold tier is about to change
        dirty: dict[str, list[StoredInteraction]] = {}
        try:
            if not self._retry("hot_dirty", lambda: dirty.update(self._hot.dirty(list(users), self._generation))):
                return False
        except HotTierLost as exc:  # nothing may count as flushed; the loop rebuilds from the log
            log.warning("interaction_hot_tier_lost_data_on_flush", error=str(exc))
            self._hot_lost = True
            return False
        items = [i for held in dirty.values() for i in held]
        if items:
            if not self._retry("cold_write", lambda: self._count_writes(self._cold.write(items))):
                return False
            flushed = {u: [i.event_id for i in held] for u, held in dirty.items()}
            if not self._retry("hot_mark_flushed", lambda: self._hot.mark_flushed(flushed)):
                return False
            self.stats.flushes += len(dirty)
            metrics.FLUSHED.inc(len(items))
        for user, tp in users.items():
            self._unflushed.get(tp, {}).pop(user, None)
        return True

    def _count_writes(self, writes: int) -> None:
        self.stats.cold_writes += writes
        metrics.COLD_WRITES.inc(writes)

    def _close_sessions(self, users: dict[str, TopicPartition], why: str) -> None:
        """Flush, keep the cold tier to max_per_type where a session passed it, evict."""
        if not self._flush(users):
            return
        for user in users:
            self._trim_cold(user)
        evicted: set[str] = set()
        self._retry("hot_evict", lambda: evicted.update(self._hot.evict(list(users))))
        for user in users:
            self._seen.pop(user, None)
            self._held.pop(user, None)
        self.stats.sessions_ended += len(users)
        metrics.SESSIONS.labels(why).inc(len(users))
        metrics.OPEN_SESSIONS.set(len(self._seen))

    def _trim_cold(self, user: str) -> None:
        cap = self._settings.max_per_type
        counts = self._held.get(user)
        if counts is None:  # adopted from another worker: count what the hot tier holds, in one read
            held: list[StoredInteraction] = []
            self._retry("hot_read", lambda: held.extend(
                self._hot.read(HistoryQuery(user, TYPES, len(TYPES) * (cap + 1))) or []))
            counts = Counter(i.type for i in held)
        for t in TYPES:
            if counts[t] > cap:
                self._retry("cold_trim", lambda t=t: self._count_writes(self._cold.trim(user, t, cap)))

    def _end_idle_sessions(self) -> None:
        cutoff = self._now_ms() - int(self._settings.inactivity_timeout_s * 1000)
        idle: dict[str, TopicPartition] = {}
        while self._idle_heap and self._idle_heap[0][0] <= cutoff:
            seen_ms, user = heapq.heappop(self._idle_heap)
            current = self._seen.get(user)
            if current is None:
                continue  # already ended
            if current[1] != seen_ms:
                heapq.heappush(self._idle_heap, (current[1], user))  # seen again since
                continue
            idle[user] = current[0]
        if idle:
            self._close_sessions(idle, "idle")

    def _checkpoint_if_due(self) -> None:
        if time.monotonic() < self._next_checkpoint:
            return
        self._next_checkpoint = time.monotonic() + self._settings.checkpoint_interval_s
        self._flush({user: tp for tp, users in self._unflushed.items() for user in users})
        metrics.CHECKPOINTS.inc()

    def _write_pending_cold(self) -> bool:
        if not self._pending_cold:
            return True
        pending = [i for items in self._pending_cold.values() for i in items]
        if not self._retry("cold_write", lambda: self._count_writes(self._cold.write(pending))):
            return False
        self._pending_cold = {}
        return True

    def _finish_batch(self) -> bool:
        """Cold writes and dead letters durable, then commit up to the oldest interaction
        held only in the hot tier. False if stopped before it was done."""
        self._apply_pending()
        if not self._write_pending_cold():
            return False
        if not self._update_windows():
            return False
        if self._pending_dead:
            dead = self._pending_dead
            if not self._retry("dead_letter", lambda: self._send_dead(dead)):
                return False
            self._pending_dead = []
        if self._hot_lost:
            return True  # commit nothing: the replay after the reset starts from the last commit
        offsets = {tp: min([nxt, *self._unflushed.get(tp, {}).values()]) for tp, nxt in self._next_offset.items()}
        if self._windows is not None:  # held too at events counted into states not saved yet
            for partition, oldest in self._windows.unsaved_offsets().items():
                tp = (self._counted_topic, partition)
                if tp in offsets:
                    offsets[tp] = min(offsets[tp], oldest)
        changed = {tp: o for tp, o in offsets.items() if self._committed.get(tp) != o}
        if changed and not self._retry("commit", lambda: self._consumer.commit(changed)):
            return False
        self._committed.update(changed)
        return True

    # -- windowed counts ----------------------------------------------------------
    def _update_windows(self) -> bool:
        """Count this batch's interactions into their users' windows, bring down the counts
        of users an event of whom just left a window (timers kept in the hot tier, per
        partition), and write the rows that changed and the users' states."""
        counted, self._counted = self._counted, {}
        if self._windows is None or not self._windows.plan().groups:
            return True
        now = self._now_ms()
        by_partition = {tp[1]: tp for tp in self._owned}
        due: dict[str, int] = {}
        if by_partition and not self._retry("window_timers", lambda: due.update(
                self._hot.take_due(sorted(by_partition), now))):
            return False
        due_users = [u for u, p in due.items() if p in by_partition]
        # States are saved every window_state_interval_s, and whenever no new event came:
        # then the commit catches up with the log.
        save = time.monotonic() >= self._next_window_save or not counted
        if not counted and not due_users and not (save and self._windows.has_unsaved()):
            return True
        if save:
            self._next_window_save = time.monotonic() + self._settings.window_state_interval_s
        batch: list = []
        if not self._retry("window_state_read", lambda: batch.append(
                self._windows.compute(counted, due_users, now, save))):
            return False
        changes = batch[0]
        if not self._retry("window_write", lambda: self._windows.write(changes)):
            return False
        partition_of = {**{u: p for u, p in due.items()}, **{u: events[-1][0] for u, events in counted.items()}}
        timers = {u: (partition_of[u], t) for u, t in changes.timers.items()}
        metrics.WINDOW_ROWS.inc(len(changes.rows))
        self.stats.window_rows += len(changes.rows)
        return self._retry("window_timers", lambda: self._hot.schedule(timers)) if timers else True

    def _send_dead(self, dead: list[tuple[Record, InvalidEvent]]) -> None:
        for record, error in dead:
            self._dead.send(record, error)
        self._dead.flush()
        self.stats.dead_lettered += len(dead)
        for _, error in dead:
            metrics.DEAD_LETTERS.labels(error.reason).inc()

    # -- hot-tier loss --------------------------------------------------------------
    def _check_generation(self) -> None:
        """A hot tier that lost its data (a restart without persistence) comes back with
        a new generation. Everything it held since the commit is in the log: rejoin
        the group, which resumes from the commit, and replay."""
        if time.monotonic() < self._next_generation_check and not self._hot_lost:
            return
        self._next_generation_check = time.monotonic() + 1.0
        current: list[str] = []
        self._retry("hot_generation", lambda: current.append(self._hot.generation()))
        if self._hot_lost or current and current[0] != self._generation:
            log.warning("interaction_hot_tier_lost_data", replay_from="committed offsets")
            metrics.HOT_TIER_RESETS.inc()
            self._generation = current[0]
            self._consumer.close()
            self._reset_state()
            self._consumer = self._new_consumer()

    def close(self) -> None:
        self._consumer.close()
