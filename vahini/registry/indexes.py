"""Vector indexes in the registry (`indexes:`): parsing their YAML and checking them
against the feature groups they index."""

from __future__ import annotations

from typing import Any, Iterator

from vahini.registry.checks import Problems, at, fields, name_of
from vahini.registry.model import FILTER_TYPES, INDEX_METRICS, FeatureGroup, VectorIndex
from vahini.registry.yaml_lines import LocatedList


def parse_index(problems: Problems, file: str, node: Any) -> VectorIndex | None:
    if not fields(problems, file, node, "index", ("name", "group", "feature"), ("metric", "filters", "description")):
        return None
    name = name_of(problems, file, node, "name", "index")
    metric = node.get("metric", "cosine")
    if metric not in INDEX_METRICS:
        problems.add(at(file, node, "metric"),
                     f"index '{name}' metric {metric!r} must be one of: {', '.join(INDEX_METRICS)}")
        return None
    filters = node.get("filters", LocatedList())
    if not isinstance(filters, LocatedList) or not all(isinstance(f, str) and f.count(".") == 1 for f in filters):
        problems.add(at(file, node, "filters"),
                     f"index '{name}' filters must be a list of <group>.<feature>, e.g. product_core.in_stock")
        return None
    names = [f.split(".", 1)[1] for f in filters]
    if len(set(names)) != len(names):
        problems.add(at(file, node, "filters"), f"index '{name}' has two filters of one feature name: {list(filters)}")
        return None
    if name is None or not isinstance(node["group"], str) or not isinstance(node["feature"], str):
        return None
    return VectorIndex(name, node["group"], node["feature"], metric, tuple(filters))


def index_problems(index: VectorIndex, groups: dict[str, FeatureGroup]) -> Iterator[tuple[str, str]]:
    """(field, message) for each way `index` does not fit the groups."""
    group = groups.get(index.group)
    if group is None:
        yield "group", f"index '{index.name}' references unknown feature group '{index.group}'"
        return
    feature = group.feature(index.feature)
    if feature is None:
        yield "feature", f"index '{index.name}': group '{index.group}' has no feature '{index.feature}'"
    elif feature.type != "vector":
        yield "feature", (f"index '{index.name}': feature '{index.group}.{index.feature}' is of type "
                          f"{feature.type}; an index needs a float vector (type: vector, dim: N)")
    for source in index.filters:
        group_name, feature_name = source.split(".", 1)
        other = groups.get(group_name)
        found = other.feature(feature_name) if other is not None else None
        if found is None:
            yield "filters", f"index '{index.name}' filter '{source}' is not a feature of any group"
        elif other is not None and other.entity != group.entity:
            yield "filters", (f"index '{index.name}' filter '{source}' belongs to entity '{other.entity}', "
                              f"not '{group.entity}' as the indexed group does")
        elif other is not None and other.source != "events":
            yield "filters", (f"index '{index.name}' filter '{source}' is a windowed count; filters are features "
                              f"written by FeatureUpdate events")
        elif found.type not in FILTER_TYPES:
            yield "filters", (f"index '{index.name}' filter '{source}' is of type {found.type}; "
                              f"filters are {', '.join(FILTER_TYPES)}")
