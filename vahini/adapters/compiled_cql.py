"""The compiled CQL encoders (vahini.adapters._cql_rows) the Cassandra writers use, or
None: where no C compiler was at hand at install, or after use_compiled(False), the
writers encode in Python (RowSerializer.encode, InteractionSerializer.encode), which
stays the reference the tests compare the compiled encoders with."""

from __future__ import annotations

from vahini import fast_paths

try:
    from vahini.adapters import _cql_rows as built  # type: ignore[attr-defined]  # compiled: no stub
except ImportError:  # installed without a C compiler
    built = None

_in_use = built


def use_compiled(on: bool = True) -> bool:
    """Encode with the compiled encoders (when built) or in Python; returns which."""
    global _in_use
    _in_use = built if on else None
    return _in_use is not None


fast_paths.register(__name__, use_compiled)


def in_use():
    """The compiled encoders' module, or None while rows are encoded in Python."""
    return _in_use
