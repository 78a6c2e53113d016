"""Between protobuf messages and Vahini's own types."""

from __future__ import annotations

import numpy as np

from vahini.serving.api import feature_service_pb2 as pb
from vahini.serving.retrieval import GroupResult


def tensor(array: np.ndarray) -> pb.Tensor:
    array = np.ascontiguousarray(array)
    return pb.Tensor(dtype=array.dtype.str, shape=array.shape, data=array.tobytes())


def array_of(t: pb.Tensor) -> np.ndarray:
    """The client side: a Tensor back into a numpy array (zero-copy view of the bytes)."""
    return np.frombuffer(t.data, dtype=np.dtype(t.dtype)).reshape(tuple(t.shape))


def group_values(result: GroupResult) -> pb.GroupValues:
    group = result.definition
    columns = []
    for j, name in enumerate(result.features):
        ftype = group.feature(name).type
        column = pb.FeatureColumn(name=name, type=ftype, status=result.status[:, j].tobytes())
        values = result.values[name]
        if ftype == "string":
            column.strings.values.extend(values.tolist())
        else:
            column.tensor.CopyFrom(tensor(values))
        columns.append(column)
    return pb.GroupValues(group=result.group, schema_version=group.version, features=columns,
                          event_time_ms=tensor(result.event_time_ms))


def update_dict(update: pb.FeatureUpdate, now_ms: int) -> dict:
    """A Persist update in the same shape as a decoded FeatureUpdate event."""
    values = {}
    for name, value in update.values.items():
        kind = value.WhichOneof("kind")
        if kind is None:
            values[name] = None
        elif kind == "vector_value":
            values[name] = list(value.vector_value.values)
        else:
            values[name] = getattr(value, kind)
    return {"entity": update.entity, "keys": dict(update.keys), "group": update.group, "values": values,
            "event_time_ms": update.event_time_ms or now_ms, "producer_id": update.producer_id or "grpc-persist"}
