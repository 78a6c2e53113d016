"""A model graph laid out as a DAG, left to right, for the Models page.

Each node sits in the column of its depth: the context inputs first, then the lookups by
how many lookups their keys chain through (product -> category -> user x category), the
sequences and the candidates step beside the lookups they need, then the output columns,
then the score nodes. The page draws it as SVG from these coordinates, on the server:
no JavaScript layout, so a graph of hundreds of columns renders in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vahini.registry.model import ModelGraph

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 230, 44, 70, 14, 16


@dataclass
class Node:
    id: str
    kind: str  # context, candidates, lookup, sequence, column, score
    label: str
    detail: str
    depth: int
    x: int = 0
    y: int = 0


@dataclass
class Layout:
    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[Node, Node]] = field(default_factory=list)
    width: int = 0
    height: int = 0

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.kind] = counts.get(node.kind, 0) + 1
        return counts


def layout(graph: ModelGraph) -> Layout:
    nodes: dict[str, Node] = {}
    sources: list[tuple[str, str]] = []  # (from id, to id)
    for name in graph.context:
        rows = " (one row each)" if name == graph.rows else ""
        nodes[f"context.{name}"] = Node(f"context.{name}", "context", name, f"context input{rows}", 0)
    if graph.candidates is not None:
        _add_candidates(graph, nodes, sources)
    _add_lookups(graph, nodes, sources)
    for s in graph.sequences:
        nodes[s.name] = Node(s.name, "sequence", s.name, f"{s.type} {s.field}, last {s.length}", 1)
        sources.append((_input_id(s.user, graph), s.name))
    _add_columns(graph, nodes, sources)
    _add_scores(graph, nodes, sources)
    edges = [(nodes[a], nodes[b]) for a, b in dict.fromkeys(sources) if a in nodes and b in nodes]
    _deepen(nodes, edges)
    _align_outputs(nodes, edges)
    return _place(list(nodes.values()), edges)


def _input_id(source: str, graph: ModelGraph) -> str:
    """The node a key source or a value source comes from."""
    if source == "row":
        return f"context.{graph.rows}"
    head = source.split(".", 1)[0]
    if head == "context":
        return source
    return head


def _add_candidates(graph: ModelGraph, nodes: dict[str, Node], sources: list) -> None:
    c = graph.candidates
    assert c is not None
    filters = ", ".join(f"{k}={v}" for k, v in c.filters)
    nodes[c.name] = Node(c.name, "candidates", c.name, f"{c.k} nearest in {c.index}"
                         + (f" where {filters}" if filters else ""), 2)
    sources.append((_input_id(c.query, graph), c.name))
    for _, value in c.filters:
        if isinstance(value, str) and value.startswith("context."):
            sources.append((value, c.name))


def _add_lookups(graph: ModelGraph, nodes: dict[str, Node], sources: list) -> None:
    for lookup in graph.lookups:
        keys = ", ".join(f"{column}={source}" for column, source in lookup.keys)
        nodes[lookup.name] = Node(lookup.name, "lookup", lookup.name, f"{lookup.group} by {keys}", 1)
        for _, source in lookup.keys:
            origin = graph.candidates.name if source == "row" and graph.candidates else _input_id(source, graph)
            sources.append((origin, lookup.name))


def _add_columns(graph: ModelGraph, nodes: dict[str, Node], sources: list) -> None:
    for column in graph.columns:
        node_id = f"column.{column.name}"
        transform = f" | {column.transform}" if column.transform else ""
        nodes[node_id] = Node(node_id, "column", column.name, f"{column.source}{transform} ({column.dtype})", 2)
        sources.append((_input_id(column.source, graph), node_id))
        for arg in column.args:  # ratio's denominator, count_matching's value: other sources
            if isinstance(arg, str) and "." in arg and arg.split(".", 1)[0] in nodes:
                sources.append((_input_id(arg, graph), node_id))


def _add_scores(graph: ModelGraph, nodes: dict[str, Node], sources: list) -> None:
    for i, score in enumerate(graph.score):
        split = ", ".join(f"{e.target}/{e.model} {e.percent}%" for e in score.endpoints)
        by = f" split by {score.split_by}" if score.split_by else ""
        nodes[f"score.{score.name}"] = Node(f"score.{score.name}", "score", score.name, f"{split}{by}", 3)
        wanted = {c for tensor in score.inputs for c in tensor.columns}  # empty: the whole matrix
        for column in graph.columns:
            if not wanted or any(w == column.name or w.startswith(f"{column.name}_") for w in wanted):
                sources.append((f"column.{column.name}", f"score.{score.name}"))
        for earlier in graph.score[:i]:  # earlier nodes' scores are extra columns of later ones
            if not wanted or earlier.name in wanted:
                sources.append((f"score.{earlier.name}", f"score.{score.name}"))


def _deepen(nodes: dict[str, Node], edges: list[tuple[Node, Node]]) -> None:
    """Push each node one column right of everything it reads (the graph is acyclic:
    the registry refuses cycles), keeping each kind at least at its own column."""
    for _ in range(len(nodes)):
        moved = False
        for a, b in edges:
            if b.depth <= a.depth:
                b.depth, moved = a.depth + 1, True
        if not moved:
            return


def _align_outputs(nodes: dict[str, Node], edges: list[tuple[Node, Node]]) -> None:
    """Every output column in one column, right of the deepest lookup, and the score
    nodes after them: the matrix reads top to bottom, in the graph's column order."""
    inputs = [n.depth for n in nodes.values() if n.kind not in ("column", "score")]
    column_depth = max(inputs, default=0) + 1
    for node in nodes.values():
        if node.kind == "column":
            node.depth = column_depth
        elif node.kind == "score":
            node.depth = column_depth + 1
    _deepen(nodes, edges)  # a score fed to a later model moves that one right again


def _place(nodes: list[Node], edges: list[tuple[Node, Node]]) -> Layout:
    by_depth: dict[int, list[Node]] = {}
    for node in nodes:
        by_depth.setdefault(node.depth, []).append(node)
    depths = sorted(by_depth)
    for column, depth in enumerate(depths):
        for row, node in enumerate(by_depth[depth]):
            node.x = MARGIN + column * (NODE_W + GAP_X)
            node.y = MARGIN + row * (NODE_H + GAP_Y)
    tallest = max((len(v) for v in by_depth.values()), default=0)
    return Layout(nodes, edges, width=2 * MARGIN + len(depths) * (NODE_W + GAP_X) - GAP_X,
                  height=2 * MARGIN + tallest * (NODE_H + GAP_Y) - GAP_Y)
