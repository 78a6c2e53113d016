from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ContextIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetFeaturesRequest(_message.Message):
    __slots__ = ("model", "context", "version")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ContextIds
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ContextIds, _Mapping]] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    context: _containers.MessageMap[str, ContextIds]
    version: int
    def __init__(self, model: _Optional[str] = ..., context: _Optional[_Mapping[str, ContextIds]] = ..., version: _Optional[int] = ...) -> None: ...

class ColumnCounts(_message.Message):
    __slots__ = ("missing", "expired", "unreadable")
    MISSING_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    missing: int
    expired: int
    unreadable: int
    def __init__(self, missing: _Optional[int] = ..., expired: _Optional[int] = ..., unreadable: _Optional[int] = ...) -> None: ...

class GetFeaturesResponse(_message.Message):
    __slots__ = ("model", "columns", "row_ids", "shape", "matrix", "counts", "degraded", "version", "dtypes", "scores", "request_id")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ColumnCounts
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ColumnCounts, _Mapping]] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROW_IDS_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DTYPES_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    row_ids: _containers.RepeatedScalarFieldContainer[str]
    shape: _containers.RepeatedScalarFieldContainer[int]
    matrix: bytes
    counts: _containers.MessageMap[str, ColumnCounts]
    degraded: str
    version: int
    dtypes: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.RepeatedCompositeFieldContainer[NodeScores]
    request_id: str
    def __init__(self, model: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., row_ids: _Optional[_Iterable[str]] = ..., shape: _Optional[_Iterable[int]] = ..., matrix: _Optional[bytes] = ..., counts: _Optional[_Mapping[str, ColumnCounts]] = ..., degraded: _Optional[str] = ..., version: _Optional[int] = ..., dtypes: _Optional[_Iterable[str]] = ..., scores: _Optional[_Iterable[_Union[NodeScores, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class NodeScores(_message.Message):
    __slots__ = ("node", "endpoint", "values")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    node: str
    endpoint: str
    values: bytes
    def __init__(self, node: _Optional[str] = ..., endpoint: _Optional[str] = ..., values: _Optional[bytes] = ...) -> None: ...
