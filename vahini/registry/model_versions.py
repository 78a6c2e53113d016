"""Versions of model graphs: each publish that changes a model's graph gives it
the next version, and keeps earlier versions so requests can pin one while a
ranker rolls over. A kept version that no longer fits the feature groups (a
feature it reads was removed) is retired, with a warning in the plan."""

from __future__ import annotations

from dataclasses import replace

from vahini.registry.compat import Change
from vahini.registry.graphs import graph_problems
from vahini.registry.model import ModelGraph, Registry

VERSIONS_KEPT = 10  # per model, besides the latest


def assign_versions(old: Registry, new: Registry) -> tuple[Registry, list[Change]]:
    """`new` with every model versioned and the versions worth keeping in its history."""
    models, history, changes = {}, dict(old.model_history), []
    for name, graph in new.models.items():
        before = old.models.get(name)
        if before is not None and before.same_graph(graph):
            models[name] = replace(graph, version=before.version)
            continue
        if before is not None:
            history[(name, before.version)] = before
        latest = max([v for (m, v) in history if m == name] + [before.version if before else 0])
        models[name] = replace(graph, version=latest + 1)
        changes.append(Change("model", name, None, f"model '{name}': version {latest + 1}"
                                                   f"{' (new)' if before is None else ' (graph changed)'}"))
    kept: dict[tuple[str, int], ModelGraph] = {}
    for (name, version), graph in sorted(history.items(), reverse=True):  # newest first
        problem = _retire_reason(graph, new, models, sum(1 for m, _ in kept if m == name))
        if problem:
            changes.append(Change("retired", name, None, f"model '{name}' version {version} retired: {problem}"))
        else:
            kept[(name, version)] = graph
    return replace(new, models=models, model_history=kept), changes


def _retire_reason(graph: ModelGraph, new: Registry, models: dict[str, ModelGraph], newer_kept: int) -> str | None:
    if graph.name not in models:
        return "the model was removed"
    if newer_kept >= VERSIONS_KEPT:
        return f"only the last {VERSIONS_KEPT} earlier versions are kept"
    problem = next(graph_problems(graph, new.groups, new.entities, new.indexes), None)
    return problem[1] if problem else None
