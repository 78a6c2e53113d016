"""The offline archive: every feature row and interaction ever ingested, each with its
event time, where the online store keeps only the newest row per key. Training sets
are rebuilt from it as of any past moment."""

from __future__ import annotations

from typing import Protocol, Sequence

from vahini.ports.feature_store import FeatureRow
from vahini.ports.interaction_store import StoredInteraction


class Archive(Protocol):
    def append(self, rows: Sequence[FeatureRow], interactions: Sequence[StoredInteraction]) -> int:
        """Add rows and interactions durably: when this returns, they survive a crash
        (files written, synced and renamed into place). Duplicates are harmless: readers
        keep one copy. Returns the files written. Raises StoreUnavailable (retriable)
        when the storage refuses."""

    def feature_files(self, group: str) -> list[str]:
        """The files holding `group`'s rows, for a reader (DuckDB, pyarrow)."""

    def interaction_files(self) -> list[str]:
        """The files holding interactions."""
