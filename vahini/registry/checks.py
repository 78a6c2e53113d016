"""Small helpers that report registry problems with the file and line they are at."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from vahini.errors import ConfigProblem
from vahini.registry.yaml_lines import LocatedList, LocatedMap

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass
class Where:
    file: str
    line: int


class Problems(list):
    def add(self, where: Where, message: str) -> None:
        self.append(ConfigProblem(where.file, where.line, message))


def at(file: str, node: Any, key: str | int | None = None) -> Where:
    if isinstance(node, LocatedMap):
        return Where(file, node.line_of(cast(str, key)) if key is not None else node.line)
    if isinstance(node, LocatedList):
        return Where(file, node.line_of(key) if isinstance(key, int) else node.line)
    return Where(file, 1)


def fields(problems: Problems, file: str, node: Any, what: str, required: tuple, optional: tuple) -> bool:
    """Check a mapping has the required keys and no unknown ones."""
    if not isinstance(node, LocatedMap):
        problems.add(at(file, node), f"{what} must be a mapping, got {type(node).__name__}")
        return False
    ok = True
    for key in required:
        if key not in node:
            problems.add(at(file, node), f"{what} is missing required field '{key}'")
            ok = False
    for key in node:
        if key not in required and key not in optional:
            allowed = ", ".join((*required, *optional))
            problems.add(at(file, node, key), f"{what} has unknown field '{key}' (allowed: {allowed})")
    return ok


def name_of(problems: Problems, file: str, node: LocatedMap, key: str, what: str) -> str | None:
    value = node.get(key)
    if not isinstance(value, str) or not NAME.match(value):
        problems.add(at(file, node, key),
                     f"{what} {key} {value!r} is not a valid name (lower_snake_case, starts with a letter, <= 63 chars)")
        return None
    return value


def positive_int(problems: Problems, file: str, node: LocatedMap, key: str, what: str, allow_zero=False) -> int | None:
    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        problems.add(at(file, node, key), f"{what} {key} must be an integer {bound}, got {value!r}")
        return None
    return value
