import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeadLetterReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEAD_LETTER_REASON_UNSPECIFIED: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_RETRIES_EXHAUSTED: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_PERMANENT_ERROR: _ClassVar[DeadLetterReason]

class ConnectorHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTOR_HEALTH_UNSPECIFIED: _ClassVar[ConnectorHealth]
    CONNECTOR_HEALTH_SERVING: _ClassVar[ConnectorHealth]
    CONNECTOR_HEALTH_NOT_SERVING: _ClassVar[ConnectorHealth]
DEAD_LETTER_REASON_UNSPECIFIED: DeadLetterReason
DEAD_LETTER_REASON_RETRIES_EXHAUSTED: DeadLetterReason
DEAD_LETTER_REASON_PERMANENT_ERROR: DeadLetterReason
CONNECTOR_HEALTH_UNSPECIFIED: ConnectorHealth
CONNECTOR_HEALTH_SERVING: ConnectorHealth
CONNECTOR_HEALTH_NOT_SERVING: ConnectorHealth

class DeadLetter(_message.Message):
    __slots__ = ("id", "run_id", "step_index", "connector", "action", "contact_id", "idempotency_key", "reason", "attempts", "last_error", "dead_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CONTACT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    DEAD_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    run_id: str
    step_index: int
    connector: str
    action: str
    contact_id: str
    idempotency_key: str
    reason: DeadLetterReason
    attempts: int
    last_error: str
    dead_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., run_id: _Optional[str] = ..., step_index: _Optional[int] = ..., connector: _Optional[str] = ..., action: _Optional[str] = ..., contact_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., reason: _Optional[_Union[DeadLetterReason, str]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., dead_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("connector", "page_size", "page_token")
    CONNECTOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connector: str
    page_size: int
    page_token: str
    def __init__(self, connector: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "next_page_token")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RedriveDeadLettersRequest(_message.Message):
    __slots__ = ("ids", "connector", "all")
    IDS_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    ids: DeadLetterIds
    connector: str
    all: bool
    def __init__(self, ids: _Optional[_Union[DeadLetterIds, _Mapping]] = ..., connector: _Optional[str] = ..., all: bool = ...) -> None: ...

class DeadLetterIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RedriveDeadLettersResponse(_message.Message):
    __slots__ = ("redriven",)
    REDRIVEN_FIELD_NUMBER: _ClassVar[int]
    redriven: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    def __init__(self, redriven: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ...) -> None: ...

class ConnectorInfo(_message.Message):
    __slots__ = ("name", "kind", "actions", "health", "health_detail", "checked_at", "circuit", "in_flight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    HEALTH_DETAIL_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    actions: _containers.RepeatedScalarFieldContainer[str]
    health: ConnectorHealth
    health_detail: str
    checked_at: _timestamp_pb2.Timestamp
    circuit: str
    in_flight: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., actions: _Optional[_Iterable[str]] = ..., health: _Optional[_Union[ConnectorHealth, str]] = ..., health_detail: _Optional[str] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., circuit: _Optional[str] = ..., in_flight: _Optional[int] = ...) -> None: ...

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
