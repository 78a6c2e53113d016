"""The reference way to build a training set (`--method replay`): the Model Proxy's
executor itself, unchanged, once per request, with the archive's rows and histories as
of the request's moment in place of the online stores (vahini.offline.as_of) and that
moment as its clock. Slower than the columnar method (vahini.offline.columnar), which
is tested to give the same rows, bit for bit.

Label rows that share their context and moment are served as one request, as a ranker
would have sent them. A chained lookup's keys come from the previous level's values,
so a request that reaches an unresolved read stops; its misses are resolved, and it
runs again, one level per pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa

from vahini.offline.archive_reader import ArchiveReader
from vahini.offline.as_of import AsOfFeatures, AsOfHistories, Moment, Unresolved
from vahini.offline.errors import TrainingSetError
from vahini.registry.model import KEY_SEPARATOR, ModelGraph, Registry
from vahini.serving.model_proxy import FeatureMatrix, ModelExecutor, levels, plan_of
from vahini.serving.retrieval import FeatureReader


@dataclass
class _Request:
    context: dict[str, list[str]]
    moment: int
    rows: list[int]  # positions in the chunk


class ReplayBuilder:
    def __init__(self, registry: Registry, graph: ModelGraph, reader: ArchiveReader):
        self._graph, self._reader, self._registry = graph, reader, registry
        self._key_sources = plan_of(graph, registry).key_sources
        self._first_level = levels(graph)[0]  # the lookups keyed by context and row ids alone
        self._moment = Moment()
        self._features, self._histories = AsOfFeatures(self._moment), AsOfHistories(self._moment)
        feature_reader = FeatureReader(self._features, None, lambda: registry, lru=False)
        self._executor = ModelExecutor(feature_reader, lambda: registry, self._histories)
        # At worst a pass per lookup (a level's entities are read one after the other), and the clean run.
        self._max_passes = len(graph.lookups) + 2
        self.requests = 0
        self.runs = 0  # executor runs: requests x passes (a chained lookup costs a pass per level)

    def matrix(self, labels: pa.Table, moments: np.ndarray, advance: Callable[[int], object]
                  ) -> tuple[list[str], list[str], np.ndarray]:
        matrices = self._serve(self._requests(labels, moments), advance)
        columns = matrices[0][1].columns if matrices else []
        dtypes = matrices[0][1].dtypes if matrices else []
        values = np.zeros((labels.num_rows, len(columns)), np.float32)
        for request, matrix in matrices:
            values[request.rows] = matrix.values
        return columns, dtypes, values

    def _requests(self, labels: pa.Table, moments: np.ndarray) -> list[_Request]:
        """Label rows sharing their context and moment, as one request each."""
        graph = self._graph
        others = [c for c in graph.context if c != graph.rows]
        other_ids = [labels[c].to_pylist() for c in others]
        grouped: dict[tuple, _Request] = {}
        for i, moment in enumerate(moments.tolist()):
            ids = tuple(column[i] for column in other_ids)
            request = grouped.get((ids, moment))
            if request is None:
                context = {c: v.split(",") for c, v in zip(others, ids)}
                request = grouped[(ids, moment)] = _Request(context, moment, [])
            request.rows.append(i)
        row_ids = labels[graph.rows].to_pylist()
        for request in grouped.values():
            request.context[graph.rows] = [row_ids[i] for i in request.rows]
        self.requests += len(grouped)
        return list(grouped.values())

    def _serve(self, requests: list[_Request], advance: Callable[[int], object]
               ) -> list[tuple[_Request, FeatureMatrix]]:
        """Run every request until it asks for nothing unresolved; resolve between passes."""
        done: list[tuple[_Request, FeatureMatrix]] = []
        pending = requests
        self._prefetch(requests)
        for _ in range(self._max_passes):
            again = []
            for request in pending:
                self._moment.t_ms, self._moment.missed = request.moment, False
                self.runs += 1
                try:
                    matrix = self._executor.run(self._graph.name, request.context, self._graph.version,
                                                as_of_ms=request.moment)
                except Unresolved:
                    again.append(request)
                    continue
                if self._moment.missed:  # a history not resolved yet
                    again.append(request)
                else:
                    done.append((request, matrix))
                    advance(len(request.rows))
            if not again:
                break
            self._resolve()
            pending = again
        else:
            raise TrainingSetError(f"requests still asked for unresolved rows after {self._max_passes} passes")
        self._features.resolved.clear()
        self._histories.resolved.clear()
        return done

    def _prefetch(self, requests: list[_Request]) -> None:
        """What the first pass would miss, resolved before it: the lookups keyed by context
        ids and row ids alone, and the sequences' histories. This only saves a pass: a key
        worked out differently here than by the executor is a miss, resolved in the next."""
        graph, features, histories = self._graph, self._features, self._histories
        for request in requests:
            for lookup in self._first_level:
                entity = self._registry.groups[lookup.group].entity
                parts = [request.context[graph.rows] if source == "row" else
                         [request.context[source[len("context."):]][0]] * len(request.rows)
                         for source in self._key_sources[lookup.name]]
                features.misses.update((entity, KEY_SEPARATOR.join(combo), lookup.group, request.moment)
                                       for combo in zip(*parts))
            wanted: dict[tuple[str, str], int] = {}
            for sequence in graph.sequences:
                key = (request.context[sequence.user.partition(".")[2]][0], sequence.type)
                wanted[key] = max(wanted.get(key, 0), sequence.length)
            histories.misses.update((user, type_, request.moment, n) for (user, type_), n in wanted.items())
        self._resolve()

    def _resolve(self) -> None:
        features, histories = self._features, self._histories
        features.resolved.update(self._reader.rows_as_of(features.misses))
        histories.resolved.update(self._reader.histories_as_of(histories.misses))
        features.misses.clear()
        histories.misses.clear()
