"""The interaction worker's fast decode: Interactions written with exactly SCHEMA are
read and checked in one compiled pass (vahini.codecs._interaction_reader) straight into
StoredInteraction, where the general way is fastavro into a dict, then
validation.check_interaction_ids, then StoredInteraction.of_event.

It takes only what it can take as it is: any other message (a SessionEvent, another
writer schema, anything malformed, an event that fails a check) is None, and the
worker reads it the general way, which gives the precise error. Without a C compiler
at install, or after `use_compiled(False)`, every message goes the general way.
tests/codecs/test_interaction_reader.py checks that what it accepts is what the
general way makes, and that SCHEMA is still the Interaction schema's canonical form.
"""

from __future__ import annotations

from typing import Sequence

from fastavro.schema import fingerprint

from vahini import fast_paths
from vahini.codecs.avro import HEADER_LEN, MAGIC
from vahini.ports.interaction_store import StoredInteraction
from vahini.validation import EventLimits

# The parsing canonical form of the schema the compiled reader implements.
SCHEMA = ('{"name":"vahini.events.Interaction","type":"record","fields":[{"name":"event_id","type":"string"},'
          '{"name":"user_id","type":"string"},{"name":"product_id","type":"string"},'
          '{"name":"category_id","type":["null","string"]},{"name":"type","type":{"name":'
          '"vahini.events.InteractionType","type":"enum","symbols":["CLICK","ORDER","WISHLIST"]}},'
          '{"name":"event_time_ms","type":"long"},{"name":"attributes","type":{"type":"map","values":"string"}}]}')
SYMBOLS = ("CLICK", "ORDER", "WISHLIST")
HEADER = MAGIC + bytes.fromhex(fingerprint(SCHEMA, "CRC-64-AVRO"))
assert len(HEADER) == HEADER_LEN

try:
    from vahini.codecs import _interaction_reader as compiled  # type: ignore[attr-defined]  # compiled: no stub
except ImportError:  # installed without a C compiler: every message goes the general way
    compiled = None

_use = compiled is not None


def use_compiled(on: bool = True) -> bool:
    """Read with the compiled reader (when built), or send every message the general way."""
    global _use
    _use = on and compiled is not None
    return _use


fast_paths.register(__name__, use_compiled)


class InteractionReader:
    """Reads a batch's message values with the limits of one worker."""

    def __init__(self, limits: EventLimits):
        self._limits = limits

    def read_many(self, values: Sequence[bytes], now_ms: int) -> list[StoredInteraction | None]:
        """Each message as a checked StoredInteraction, or None: read it the general way."""
        if not _use:
            return [None] * len(values)
        return compiled.read_many(values, HEADER, SYMBOLS, self._limits.max_key_bytes,
                                  now_ms + self._limits.max_future_skew_ms, StoredInteraction)
