from switchboard.v1 import leads_pb2 as _leads_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LeadState(_message.Message):
    __slots__ = ("lead", "has_lead", "recent", "activity_count", "read_us")
    LEAD_FIELD_NUMBER: _ClassVar[int]
    HAS_LEAD_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_COUNT_FIELD_NUMBER: _ClassVar[int]
    READ_US_FIELD_NUMBER: _ClassVar[int]
    lead: _leads_pb2.Lead
    has_lead: bool
    recent: _containers.RepeatedCompositeFieldContainer[StoredActivity]
    activity_count: int
    read_us: int
    def __init__(self, lead: _Optional[_Union[_leads_pb2.Lead, _Mapping]] = ..., has_lead: bool = ..., recent: _Optional[_Iterable[_Union[StoredActivity, _Mapping]]] = ..., activity_count: _Optional[int] = ..., read_us: _Optional[int] = ...) -> None: ...

class StoredActivity(_message.Message):
    __slots__ = ("type", "occurred_us", "value")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_US_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: str
    occurred_us: int
    value: float
    def __init__(self, type: _Optional[str] = ..., occurred_us: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
