from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InteractionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERACTION_TYPE_UNSPECIFIED: _ClassVar[InteractionType]
    CLICK: _ClassVar[InteractionType]
    ORDER: _ClassVar[InteractionType]
    WISHLIST: _ClassVar[InteractionType]
INTERACTION_TYPE_UNSPECIFIED: InteractionType
CLICK: InteractionType
ORDER: InteractionType
WISHLIST: InteractionType

class GetInteractionsRequest(_message.Message):
    __slots__ = ("user_id", "types", "limit", "since_ms", "until_ms")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    types: _containers.RepeatedScalarFieldContainer[InteractionType]
    limit: int
    since_ms: int
    until_ms: int
    def __init__(self, user_id: _Optional[str] = ..., types: _Optional[_Iterable[_Union[InteractionType, str]]] = ..., limit: _Optional[int] = ..., since_ms: _Optional[int] = ..., until_ms: _Optional[int] = ...) -> None: ...

class InteractionRecord(_message.Message):
    __slots__ = ("event_id", "product_id", "category_id", "type", "event_time_ms", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    product_id: str
    category_id: str
    type: InteractionType
    event_time_ms: int
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, event_id: _Optional[str] = ..., product_id: _Optional[str] = ..., category_id: _Optional[str] = ..., type: _Optional[_Union[InteractionType, str]] = ..., event_time_ms: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetInteractionsResponse(_message.Message):
    __slots__ = ("user_id", "source", "interactions")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    INTERACTIONS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    source: str
    interactions: _containers.RepeatedCompositeFieldContainer[InteractionRecord]
    def __init__(self, user_id: _Optional[str] = ..., source: _Optional[str] = ..., interactions: _Optional[_Iterable[_Union[InteractionRecord, _Mapping]]] = ...) -> None: ...
