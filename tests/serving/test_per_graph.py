"""PerGraph: worked out once per graph object; a new publish (a new object) is worked out
again, and old graphs do not pile up."""

from vahini.serving.per_graph import PerGraph


class Graph:
    pass


def test_once_per_graph_object_and_again_for_a_new_one():
    cache: PerGraph[int] = PerGraph(limit=3)
    built: list[object] = []

    def work_out(graph):
        return lambda: built.append(graph) or len(built)
    first, second = Graph(), Graph()
    assert cache.get(first, work_out(first)) == cache.get(first, work_out(first)) == 1
    assert cache.get(second, work_out(second)) == 2
    assert built == [first, second]


def test_old_graphs_are_forgotten_beyond_the_limit():
    cache: PerGraph[str] = PerGraph(limit=2)
    graphs = [Graph() for _ in range(3)]
    for g in graphs:
        cache.get(g, lambda g=g: str(id(g)))
    assert len(cache._found) == 1  # cleared when full, then the newest kept
