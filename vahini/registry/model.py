"""Registry data model. Immutable; built by the loader, shared by every reader."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

# Registry type name -> numpy dtype of the stored value (None: variable-length string).
SCALAR_DTYPES: dict[str, np.dtype] = {
    "int": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "float": np.dtype("<f8"),
    "float32": np.dtype("<f4"),
    "bool": np.dtype("?"),
}
FEATURE_TYPES = (*SCALAR_DTYPES, "string", "vector")
KEY_SEPARATOR = "|"


@dataclass(frozen=True)
class Entity:
    name: str
    keys: tuple[str, ...]

    def key_of(self, values: dict[str, str]) -> str:
        """The storage key: key column values joined in declared order."""
        return KEY_SEPARATOR.join(values[k] for k in self.keys)


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    default: Any
    dim: int = 0  # vectors only

    def __post_init__(self) -> None:
        if isinstance(self.default, list):  # keep Feature hashable: layouts are cached by features
            object.__setattr__(self, "default", tuple(self.default))


@dataclass(frozen=True)
class CachePolicy:
    """How readers cache a group: Redis TTL (0 = no Redis caching) and in-process LRU size."""

    redis_ttl_s: float = 60.0
    lru_size: int = 0
    lru_ttl_s: float = 1.0
    negative_ttl_s: float = 5.0


_WINDOW_UNITS_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
_WINDOW_TYPES = {"clicks": "CLICK", "orders": "ORDER", "wishlists": "WISHLIST"}
WINDOW_FEATURE = re.compile(r"^(clicks|orders|wishlists)_(\d+)(m|h|d)$")
INTERACTION_ENTITY_KEYS = (("user_id",), ("user_id", "category_id"))


def window_of(feature_name: str) -> tuple[str, int] | None:
    """(interaction type, window in ms) of a windowed-count feature such as `clicks_1h`."""
    m = WINDOW_FEATURE.match(feature_name)
    if m is None or int(m.group(2)) == 0:
        return None
    return _WINDOW_TYPES[m.group(1)], int(m.group(2)) * _WINDOW_UNITS_MS[m.group(3)]


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    entity: str
    version: int
    ttl_s: int  # 0 = values never expire
    features: tuple[Feature, ...]
    cache: CachePolicy = field(default_factory=CachePolicy)
    # "events": written from FeatureUpdate events. "interactions": windowed counts the
    # interaction worker keeps from users' interaction histories.
    source: str = "events"

    def __post_init__(self) -> None:
        # Looked up for every value of every event: index once.
        object.__setattr__(self, "_by_name", {f.name: f for f in self.features})
        object.__setattr__(self, "_positions", {f.name: j for j, f in enumerate(self.features)})

    def feature(self, name: str) -> Feature | None:
        return self._by_name.get(name)  # type: ignore[attr-defined]  # set in __post_init__, not a field

    def position(self, name: str) -> int:
        """The feature's place in declared order (its bit in a stored blob's bitmap)."""
        return self._positions[name]  # type: ignore[attr-defined]  # set in __post_init__, not a field


@dataclass(frozen=True)
class Lookup:
    """One node of a model graph: fetch `group` for keys built from earlier values."""

    name: str
    group: str
    keys: tuple[tuple[str, str], ...]  # (key column, source) e.g. ("category_id", "product.category_id")


@dataclass(frozen=True)
class HistoryInput:
    """A sequence from the interaction store: the user's newest `length` product or
    category ids (`field`) of one interaction `type`, padded to that length."""

    name: str
    user: str  # the context input holding the user id, e.g. "context.user_id"
    type: str  # CLICK, ORDER or WISHLIST
    field: str  # "product_id" or "category_id"
    length: int


TRANSFORMS = ("", "log1p", "clip", "bucketize", "one_hot", "ratio", "age", "hash", "count_matching")
COLUMN_DTYPES = ("float32", "int32")
AGE_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True)
class Column:
    """One output of a model graph: a lookup's feature (`<lookup>.<feature>`) or a
    sequence, optionally transformed. It fills one column, or several: one per
    dimension of a vector, per one-hot value, or per position of a sequence."""

    name: str
    source: str
    transform: str = ""
    # clip: (min, max); bucketize: boundaries; one_hot: values; ratio: (denominator source,);
    # age: (unit,); hash: (buckets,); count_matching: (source of the value to match,)
    args: tuple = ()
    dtype: str = "float32"
    default: float | None = None  # None: the source feature's default, transformed

    def __post_init__(self) -> None:
        # Lists (from JSON) become tuples, so a graph read back equals the one published.
        object.__setattr__(self, "args", tuple(tuple(a) if isinstance(a, list) else a for a in self.args))


@dataclass(frozen=True)
class Endpoint:
    """A model server speaking KServe v2 gRPC (`ModelInfer`), and its share of traffic."""

    target: str  # host:port, or a name from serving.model_endpoints
    model: str  # the model name at the endpoint
    version: str = ""
    percent: int = 100
    # What to read back, set on the node or overridden per endpoint (the loader folds
    # the node's values in): the output tensor to request ("": the endpoint's only
    # output), the column of an [N, k] output, and the most rows one call may carry
    # (0: all rows in one call; Triton refuses more than its model's max_batch_size).
    output: str = ""
    column: int | None = None
    batch_size: int = 0


TENSOR_DATATYPES = ("FP32", "FP64", "INT32", "INT64")


@dataclass(frozen=True)
class InputTensor:
    """A named input tensor of a model call: these matrix columns, in this order, as `datatype`."""

    name: str
    columns: tuple[str, ...]
    datatype: str = "FP32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))


@dataclass(frozen=True)
class ScoreNode:
    """Scores the matrix (and the scores of the nodes before it, as extra columns)
    with one of its endpoints, chosen sticky per `split_by` id."""

    name: str
    endpoints: tuple[Endpoint, ...]
    timeout_ms: int = 100
    split_by: str = ""  # a context input, e.g. "user_id"; "" with a single endpoint
    input: str = "features"  # the KServe input tensor name, when the whole matrix goes as one FP32 tensor
    default: float = 0.0  # the score when the endpoint fails and on_outage is "defaults"
    inputs: tuple[InputTensor, ...] = ()  # named tensors of chosen columns, in place of the one matrix

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", tuple(
            e if isinstance(e, Endpoint) else Endpoint(**e) for e in self.endpoints))
        object.__setattr__(self, "inputs", tuple(
            t if isinstance(t, InputTensor) else InputTensor(**t) for t in self.inputs))


@dataclass(frozen=True)
class Candidates:
    """A graph's `candidates:` step: its rows are the `k` keys of `index` nearest the
    vector `query` (`<lookup>.<feature>` of a lookup keyed by context ids), whose
    filters equal `filters` (name -> a value, or `context.<id>`)."""

    name: str
    index: str
    query: str
    k: int
    filters: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(tuple(f) for f in self.filters))


@dataclass(frozen=True)
class ModelGraph:
    """A model's feature-retrieval graph (declared here, executed by the Model Proxy)."""

    name: str
    context: tuple[str, ...]
    rows: str
    lookups: tuple[Lookup, ...]
    columns: tuple[Column, ...]
    # When a store the graph reads is down: "fail" the request (UNAVAILABLE), or serve
    # "defaults" for what could not be read and say so in the response.
    on_outage: str = "fail"
    sequences: tuple[HistoryInput, ...] = ()
    score: tuple[ScoreNode, ...] = ()
    version: int = 0  # assigned by `vahini apply`: 1, 2, ... for each published change of the graph
    log_sample: float = 0.0  # `log: {sample: ...}`: the share of requests the Model Proxy logs (0 to 1)
    # `rows: <candidates name>`: the rows are found by similarity search, and a lookup of
    # the index's group keyed by the row, named as the step, is among `lookups`.
    candidates: Candidates | None = None

    def __post_init__(self) -> None:
        for name, kind in (("lookups", Lookup), ("columns", Column), ("sequences", HistoryInput),
                           ("score", ScoreNode)):
            items = getattr(self, name)
            object.__setattr__(self, name, tuple(i if isinstance(i, kind) else _from_dict(kind, i) for i in items))
        object.__setattr__(self, "context", tuple(self.context))
        if isinstance(self.candidates, dict):
            object.__setattr__(self, "candidates", Candidates(**self.candidates))

    def same_graph(self, other: "ModelGraph") -> bool:
        return replace(self, version=0) == replace(other, version=0)


def _from_dict(kind, d: dict):
    if kind is Lookup:
        return Lookup(d["name"], d["group"], tuple(map(tuple, d["keys"])))
    return kind(**d)


INDEX_METRICS = ("cosine", "dot", "l2")
FILTER_TYPES = ("bool", "int", "int32", "string")


@dataclass(frozen=True)
class VectorIndex:
    """A similarity index over one vector feature of a group, kept by ingestion.
    `filters` are `<group>.<feature>` scalars of the same entity that a search may
    require to equal a value (`in_stock = true`)."""

    name: str
    group: str
    feature: str
    metric: str = "cosine"
    filters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(self.filters))

    def filter_name(self, source: str) -> str:
        """How a search names a filter: its feature, `in_stock` for `product_core.in_stock`."""
        return source.split(".", 1)[1]


@dataclass(frozen=True)
class Registry:
    entities: dict[str, Entity]
    groups: dict[str, FeatureGroup]
    models: dict[str, ModelGraph]
    # Every published layout of every group, so blobs written under an older
    # schema version stay readable after the group changes.
    history: dict[tuple[str, int], tuple[Feature, ...]] = field(default_factory=dict)
    # Earlier published versions of each model graph, so a request can pin one.
    model_history: dict[tuple[str, int], ModelGraph] = field(default_factory=dict)
    revision: int = 0  # 1, 2, ... for each publish that changed something (vahini.registry.revisions)
    indexes: dict[str, VectorIndex] = field(default_factory=dict)
    # Where each definition came from, "file.yaml:line", by "entity:<name>", "group:<name>",
    # "feature:<group>.<name>", "model:<name>" and "index:<name>" (what the console shows).
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def source_of(self, kind: str, name: str) -> str:
        """`kind` (entity, group, feature, model, index) `name`'s "file.yaml:line", or ""."""
        return self.sources.get(f"{kind}:{name}", "")

    def model(self, name: str, version: int = 0) -> ModelGraph | None:
        """The latest graph of `name`, or the given published version of it."""
        latest = self.models.get(name)
        if not version or (latest is not None and latest.version == version):
            return latest
        return self.model_history.get((name, version))

    def features_of(self, group: str, version: int) -> tuple[Feature, ...] | None:
        current = self.groups.get(group)
        if current is not None and current.version == version:
            return current.features
        return self.history.get((group, version))

    def index_dim(self, index: VectorIndex) -> int:
        """The dimension of the vectors `index` holds."""
        return self.groups[index.group].feature(index.feature).dim  # type: ignore[union-attr]  # checked at load

    def filter_features(self, index: VectorIndex) -> dict[str, Feature]:
        """`index`'s filters by the name a search gives them (`in_stock`), with their features."""
        return {index.filter_name(f): self.groups[f.split(".", 1)[0]].feature(index.filter_name(f))  # type: ignore[misc]
                for f in index.filters}

    def indexes_of(self, group: str) -> list[VectorIndex]:
        """The indexes an update of `group` changes: by its vector or by a filter."""
        return [i for i in self.indexes.values()
                if i.group == group or any(f.split(".", 1)[0] == group for f in i.filters)]

    def to_json_dict(self) -> dict:
        d = self._json_dict()
        if self.indexes:  # left out while unused: older servers read the registry during an upgrade
            d["indexes"] = [asdict(i) for i in self.indexes.values()]
        if self.sources:
            d["sources"] = dict(sorted(self.sources.items()))
        return d

    def _json_dict(self) -> dict:
        return {
            "entities": [asdict(e) for e in self.entities.values()],
            "feature_groups": [asdict(g) for g in self.groups.values()],
            "models": [_graph_dict(m) for m in self.models.values()],
            "history": [
                {"group": g, "version": v, "features": [asdict(f) for f in fs]}
                for (g, v), fs in sorted(self.history.items())
            ],
            "model_history": [_graph_dict(m) for _, m in sorted(self.model_history.items())],
            "revision": self.revision,
        }

    @classmethod
    def from_json_dict(cls, d: dict) -> "Registry":
        feats = lambda items: tuple(Feature(**f) for f in items)  # noqa: E731
        groups = {
            g["name"]: FeatureGroup(
                name=g["name"], entity=g["entity"], version=g["version"], ttl_s=g["ttl_s"],
                features=feats(g["features"]), cache=CachePolicy(**g.get("cache", {})),
                source=g.get("source", "events"),
            )
            for g in d["feature_groups"]
        }
        models = {m["name"]: _graph_from_dict(m) for m in d["models"]}
        model_history = {(m["name"], m["version"]): _graph_from_dict(m) for m in d.get("model_history", [])}
        return cls(
            entities={e["name"]: Entity(e["name"], tuple(e["keys"])) for e in d["entities"]},
            groups=groups,
            models=models,
            history={(h["group"], h["version"]): feats(h["features"]) for h in d.get("history", [])},
            model_history=model_history,
            revision=d.get("revision", 0),
            indexes={i["name"]: VectorIndex(**i) for i in d.get("indexes", [])},
            sources=dict(d.get("sources", {})),
        )

    @classmethod
    def empty(cls) -> "Registry":
        return cls({}, {}, {})


# Score-node fields added after the first release, left out of the published JSON while
# at their defaults: a registry that does not use them stays readable by older
# servers during a rolling upgrade.
_NEWER_SCORE_FIELDS: dict[str, object] = {"inputs": []}
_NEWER_ENDPOINT_FIELDS = {"output": "", "column": None, "batch_size": 0}


def _graph_dict(graph: ModelGraph) -> dict:
    d = asdict(graph)
    if d["candidates"] is None:  # left out while unused: older servers read the registry during an upgrade
        del d["candidates"]
    for node in d["score"]:
        _drop_defaults(node, _NEWER_SCORE_FIELDS)
        for endpoint in node["endpoints"]:
            _drop_defaults(endpoint, _NEWER_ENDPOINT_FIELDS)
    return d


def _drop_defaults(d: dict, defaults: dict) -> None:
    for key, default in defaults.items():
        if key in d and (d[key] == default or d[key] == ()):
            del d[key]


def _graph_from_dict(m: dict) -> ModelGraph:
    fields = dict(m)
    if "features" in fields:  # written before output columns had transforms
        fields["columns"] = [{"name": c, "source": c} for c in fields.pop("features")]
    return ModelGraph(**fields)
