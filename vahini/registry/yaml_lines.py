"""YAML loading that remembers where each value came from, so every config
problem can name its file and line. Duplicate keys are reported, not silently
overwritten as plain PyYAML does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]  # typed only from PyYAML 6.0.4 on

from vahini.errors import ConfigProblem


class LocatedMap(dict):
    """A mapping with the line of the mapping itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _Loader(yaml.SafeLoader):
    problems: list[ConfigProblem]
    file: str


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedMap:
    loader.flatten_mapping(node)
    result = LocatedMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            loader.problems.append(ConfigProblem(
                loader.file, line, f"duplicate key '{key}' (first at line {result.key_lines[key]})"))
            continue
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_located(path: Path, problems: list[ConfigProblem]) -> Any:
    """Parse one YAML file; syntax errors and duplicate keys go to `problems`."""
    loader = _Loader(path.read_text(encoding="utf-8"))
    loader.problems = problems
    loader.file = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problems.append(ConfigProblem(str(path), line, f"YAML syntax error: {exc.problem or exc}"))
        return None
    finally:
        loader.dispose()
