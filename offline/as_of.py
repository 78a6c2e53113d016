"""The Model Proxy's ports answered as of a past moment, from what the archive held:
a FeatureStore and a history reader that the unchanged ModelExecutor reads through.

They answer from rows resolved beforehand (vahini.offline.archive_reader). A read that
asks for rows not resolved yet notes them as misses and raises Unresolved, which ends
the run; the training set resolves the misses and runs the request again. So a chained
lookup's keys, which come from an earlier level's values, are resolved one level per
pass, and a run that cannot finish stops at its first unresolved read."""

from __future__ import annotations

from typing import Callable, Sequence

from vahini.ports.feature_store import FeatureRow
from vahini.ports.interaction_store import HistoryQuery, StoredInteraction
from vahini.serving.interactions import History
from vahini.offline.archive_reader import FeatureAsk, HistoryAsk

_UNRESOLVED = object()


class Unresolved(Exception):
    """A read asked for rows not resolved yet (noted as misses): run the request again
    once they are. Not a StoreUnavailable, which a graph with on_outage: defaults would
    answer with defaults."""


class Moment:
    """The moment being replayed, shared by the executor's ports."""

    t_ms = 0
    missed = False  # whether the current run asked for something not resolved yet


class AsOfFeatures:
    """FeatureStore port, read-only: the rows resolved for (entity, key, group, moment)."""

    def __init__(self, moment: Moment):
        self._moment = moment
        self.resolved: dict[FeatureAsk, FeatureRow | None] = {}
        self.misses: set[FeatureAsk] = set()

    def read(self, entity: str, keys: Sequence[str], groups: Sequence[str],
             timeout_s: float | None = None) -> dict[tuple[str, str], FeatureRow]:
        t, found, missed = self._moment.t_ms, {}, False
        for key in keys:
            for group in groups:
                ask = (entity, key, group, t)
                row = self.resolved.get(ask, _UNRESOLVED)
                if row is _UNRESOLVED:
                    self.misses.add(ask)
                    missed = True
                elif row is not None:
                    found[(key, group)] = row
        if missed:
            self._moment.missed = True
            raise Unresolved(f"{entity} rows as of {t}")
        return found

    read_in_bulk = read

    def write(self, rows: Sequence[FeatureRow], timeout_s: float | None = None) -> None:
        raise TypeError("a training set reads the archive: it writes nothing")

    def close(self) -> None:
        pass


class AsOfHistories:
    """The history reader the executor calls (start_history), from resolved histories."""

    def __init__(self, moment: Moment):
        self._moment = moment
        self.resolved: dict[HistoryAsk, list[StoredInteraction]] = {}
        self.misses: set[HistoryAsk] = set()

    def start_history(self, query: HistoryQuery, timeout_s: float | None = None) -> Callable[[], History]:
        ask = (query.user_id, query.types[0], self._moment.t_ms, query.limit)
        items = self.resolved.get(ask)
        if items is None:
            self.misses.add(ask)
            self._moment.missed = True
            items = []
        return lambda: History(query.user_id, "archive", items)
