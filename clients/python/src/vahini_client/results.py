"""What the client returns: numpy arrays and plain dataclasses, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STATUS_NAMES = ("present", "missing", "expired", "unreadable")  # FeatureService's ValueStatus, by number


@dataclass
class GroupValues:
    """One feature group's values for the requested keys, a column per feature."""

    group: str
    schema_version: int
    values: dict[str, np.ndarray | list[str]]  # feature -> one value per key (vectors: keys x dim)
    status: dict[str, np.ndarray]  # feature -> int8 per key; STATUS_NAMES gives each a name
    event_time_ms: np.ndarray  # int64 per key; 0 where nothing was stored

    def status_names(self, feature: str) -> list[str]:
        return [STATUS_NAMES[s] for s in self.status[feature]]


@dataclass
class SearchHits:
    """`FeatureService.Search`: the nearest keys first, with their scores (cosine
    similarity, dot product, or Euclidean distance for `l2`)."""

    keys: list[str]
    scores: np.ndarray  # float64, one per key
    metric: str


@dataclass
class Features:
    """`FeatureService.Retrieve`: per group, its values in the order of `keys`."""

    keys: list[str]
    groups: dict[str, GroupValues]


@dataclass
class Interaction:
    event_id: str
    type: str  # CLICK, ORDER or WISHLIST
    product_id: str
    category_id: str
    event_time_ms: int
    attributes: dict[str, str]


@dataclass
class History:
    """`InteractionService.GetInteractions`: newest first, and the tier that answered."""

    user_id: str
    source: str  # "hot" or "cold"
    interactions: list[Interaction]


@dataclass
class ModelFeatures:
    """`ModelProxy.GetFeatures`: the model's matrix, rows x columns, and its scores."""

    model: str
    version: int
    columns: list[str]
    row_ids: list[str]
    matrix: np.ndarray  # float32, rows x columns
    dtypes: list[str]  # per column: float32, or int32 for integer-valued columns
    defaulted: dict[str, dict[str, int]]  # column -> {missing, expired, unreadable}, where a default was used
    degraded: str = ""  # non-empty: a store was down and defaults were served (the graph's on_outage: defaults)
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # score node -> float32 per row
    endpoints: dict[str, str] = field(default_factory=dict)  # score node -> the endpoint that scored
    request_id: str = ""  # the response's id: the feature log's, when the model logs it

    def to_pandas(self):
        """The matrix as a DataFrame indexed by row id (needs `pip install vahini-client[pandas]`)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("ModelFeatures.to_pandas needs pandas: pip install 'vahini-client[pandas]'") from None
        frame = pd.DataFrame(self.matrix, index=self.row_ids, columns=self.columns)
        for node, values in self.scores.items():
            frame[f"score.{node}"] = values
        return frame
