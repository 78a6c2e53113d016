"""What the read side works out once per published model graph (its plan, its score
nodes' tensors): kept by the graph object's identity, which is cheap to look up on
every request and changes with every publish."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class PerGraph(Generic[T]):
    def __init__(self, limit: int = 64):
        self._limit = limit
        self._found: dict[int, tuple[object, T]] = {}  # id(graph) -> (the graph, what was worked out)

    def get(self, graph: object, work_out: Callable[[], T]) -> T:
        cached = self._found.get(id(graph))
        if cached is not None and cached[0] is graph:  # the graph kept alive: its id cannot be reused
            return cached[1]
        value = work_out()
        if len(self._found) >= self._limit:  # publishes replace graphs: never let old ones pile up
            self._found.clear()
        self._found[id(graph)] = (graph, value)
        return value
