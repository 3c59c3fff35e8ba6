import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectorHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTOR_HEALTH_UNSPECIFIED: _ClassVar[ConnectorHealth]
    CONNECTOR_HEALTH_SERVING: _ClassVar[ConnectorHealth]
    CONNECTOR_HEALTH_NOT_SERVING: _ClassVar[ConnectorHealth]
CONNECTOR_HEALTH_UNSPECIFIED: ConnectorHealth
CONNECTOR_HEALTH_SERVING: ConnectorHealth
CONNECTOR_HEALTH_NOT_SERVING: ConnectorHealth

class ConnectorInfo(_message.Message):
    __slots__ = ("name", "kind", "actions", "health", "health_detail", "checked_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    HEALTH_DETAIL_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    actions: _containers.RepeatedScalarFieldContainer[str]
    health: ConnectorHealth
    health_detail: str
    checked_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., actions: _Optional[_Iterable[str]] = ..., health: _Optional[_Union[ConnectorHealth, str]] = ..., health_detail: _Optional[str] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListConnectorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListConnectorsResponse(_message.Message):
    __slots__ = ("connectors",)
    CONNECTORS_FIELD_NUMBER: _ClassVar[int]
    connectors: _containers.RepeatedCompositeFieldContainer[ConnectorInfo]
    def __init__(self, connectors: _Optional[_Iterable[_Union[ConnectorInfo, _Mapping]]] = ...) -> None: ...

class InvokeConnectorRequest(_message.Message):
    __slots__ = ("connector", "action", "payload", "idempotency_key")
    CONNECTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    connector: str
    action: str
    payload: _struct_pb2.Struct
    idempotency_key: str
    def __init__(self, connector: _Optional[str] = ..., action: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class InvokeConnectorResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _struct_pb2.Struct
    def __init__(self, result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
