from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ValueStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRESENT: _ClassVar[ValueStatus]
    MISSING: _ClassVar[ValueStatus]
    EXPIRED: _ClassVar[ValueStatus]
    UNREADABLE: _ClassVar[ValueStatus]
PRESENT: ValueStatus
MISSING: ValueStatus
EXPIRED: ValueStatus
UNREADABLE: ValueStatus

class SearchRequest(_message.Message):
    __slots__ = ("index", "vector", "key", "k", "filters")
    class FiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    index: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    key: str
    k: int
    filters: _containers.MessageMap[str, Value]
    def __init__(self, index: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., key: _Optional[str] = ..., k: _Optional[int] = ..., filters: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("keys", "scores", "metric")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.RepeatedScalarFieldContainer[float]
    metric: str
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., scores: _Optional[_Iterable[float]] = ..., metric: _Optional[str] = ...) -> None: ...

class GroupSelector(_message.Message):
    __slots__ = ("group", "features")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    group: str
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class RetrieveRequest(_message.Message):
    __slots__ = ("entity", "keys", "groups")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    entity: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedCompositeFieldContainer[GroupSelector]
    def __init__(self, entity: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[_Union[GroupSelector, _Mapping]]] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class StringColumn(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class FeatureColumn(_message.Message):
    __slots__ = ("name", "type", "status", "tensor", "strings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    status: bytes
    tensor: Tensor
    strings: StringColumn
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., status: _Optional[bytes] = ..., tensor: _Optional[_Union[Tensor, _Mapping]] = ..., strings: _Optional[_Union[StringColumn, _Mapping]] = ...) -> None: ...

class GroupValues(_message.Message):
    __slots__ = ("group", "schema_version", "features", "event_time_ms")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    group: str
    schema_version: int
    features: _containers.RepeatedCompositeFieldContainer[FeatureColumn]
    event_time_ms: Tensor
    def __init__(self, group: _Optional[str] = ..., schema_version: _Optional[int] = ..., features: _Optional[_Iterable[_Union[FeatureColumn, _Mapping]]] = ..., event_time_ms: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class RetrieveResponse(_message.Message):
    __slots__ = ("keys", "groups")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedCompositeFieldContainer[GroupValues]
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[_Union[GroupValues, _Mapping]]] = ...) -> None: ...

class FloatVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("int_value", "float_value", "bool_value", "string_value", "vector_value")
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_VALUE_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    float_value: float
    bool_value: bool
    string_value: str
    vector_value: FloatVector
    def __init__(self, int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., string_value: _Optional[str] = ..., vector_value: _Optional[_Union[FloatVector, _Mapping]] = ...) -> None: ...

class FeatureUpdate(_message.Message):
    __slots__ = ("entity", "keys", "group", "values", "event_time_ms", "producer_id")
    class KeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    entity: str
    keys: _containers.ScalarMap[str, str]
    group: str
    values: _containers.MessageMap[str, Value]
    event_time_ms: int
    producer_id: str
    def __init__(self, entity: _Optional[str] = ..., keys: _Optional[_Mapping[str, str]] = ..., group: _Optional[str] = ..., values: _Optional[_Mapping[str, Value]] = ..., event_time_ms: _Optional[int] = ..., producer_id: _Optional[str] = ...) -> None: ...

class PersistRequest(_message.Message):
    __slots__ = ("updates",)
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[FeatureUpdate]
    def __init__(self, updates: _Optional[_Iterable[_Union[FeatureUpdate, _Mapping]]] = ...) -> None: ...

class PersistResponse(_message.Message):
    __slots__ = ("rows_written",)
    ROWS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    rows_written: int
    def __init__(self, rows_written: _Optional[int] = ...) -> None: ...
