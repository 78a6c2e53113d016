"""One switch for every fast path in the process.

Vahini's hot paths run compiled loops and encoders (`vahini.codecs._loops`, the
interaction reader, the CQL row encoders, the window step) and reach past three
libraries' public APIs: fastavro's `_read_data` and an own FeatureUpdate reader,
scylla-driver's pre-encoded batches and token-ring table, and a hiredis-packed Redis
wire in place of redis-py's command packing. Each is pinned and contract-tested.

With the setting `fast_paths = false` every one of them gives way to the Python code
it stands in for or the library's public API: the same rows, replies and commits, at
several times the CPU. It is the escape hatch for a library upgrade or a compiled
module in doubt, and the contract suites run both ways.

Each module with a fast path registers its switch here when imported, and is set to
the process's current choice at once; `vahini.wiring` applies the setting."""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

T = TypeVar("T")

_switches: dict[str, Callable[[bool], object]] = {}
_on = True


def register(name: str, switch: Callable[[bool], object]) -> None:
    """Add `switch(on)` under `name` and call it with the current choice."""
    _switches[name] = switch
    switch(_on)


def bind(module_name: str, attribute: str, fast: T) -> T | None:
    """Keep `module.attribute` set to `fast` while fast paths are on and None while off
    (`fast` itself is None where a compiled module was not built). Returns the value to
    assign now: `compiled = fast_paths.bind(__name__, "compiled", built)`."""
    module = sys.modules[module_name]
    register(f"{module_name}.{attribute}", lambda on: setattr(module, attribute, fast if on else None))
    return fast if _on else None


def use(on: bool) -> None:
    """Turn every fast path of the process on or off."""
    global _on
    _on = bool(on)
    for switch in _switches.values():
        switch(_on)


def enabled() -> bool:
    return _on


def registered() -> list[str]:
    """The names of the switches registered so far (those of the modules imported)."""
    return sorted(_switches)
