import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.v1 import common_pb2 as _common_pb2
from switchboard.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActivityType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTIVITY_TYPE_UNSPECIFIED: _ClassVar[ActivityType]
    ACTIVITY_TYPE_EMAIL_OPEN: _ClassVar[ActivityType]
    ACTIVITY_TYPE_EMAIL_CLICK: _ClassVar[ActivityType]
    ACTIVITY_TYPE_PAGE_VIEW: _ClassVar[ActivityType]
    ACTIVITY_TYPE_FORM_SUBMIT: _ClassVar[ActivityType]
    ACTIVITY_TYPE_PURCHASE: _ClassVar[ActivityType]
    ACTIVITY_TYPE_EVENT_ATTENDED: _ClassVar[ActivityType]
    ACTIVITY_TYPE_DEMO_REQUEST: _ClassVar[ActivityType]
    ACTIVITY_TYPE_UNSUBSCRIBE: _ClassVar[ActivityType]

class LeadStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEAD_STATUS_UNSPECIFIED: _ClassVar[LeadStatus]
    LEAD_STATUS_NEW: _ClassVar[LeadStatus]
    LEAD_STATUS_MQL: _ClassVar[LeadStatus]
    LEAD_STATUS_SQL: _ClassVar[LeadStatus]
    LEAD_STATUS_OPPORTUNITY: _ClassVar[LeadStatus]
    LEAD_STATUS_CUSTOMER: _ClassVar[LeadStatus]
    LEAD_STATUS_LOST: _ClassVar[LeadStatus]

class LeadGrade(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEAD_GRADE_UNSPECIFIED: _ClassVar[LeadGrade]
    LEAD_GRADE_A: _ClassVar[LeadGrade]
    LEAD_GRADE_B: _ClassVar[LeadGrade]
    LEAD_GRADE_C: _ClassVar[LeadGrade]
    LEAD_GRADE_D: _ClassVar[LeadGrade]
ACTIVITY_TYPE_UNSPECIFIED: ActivityType
ACTIVITY_TYPE_EMAIL_OPEN: ActivityType
ACTIVITY_TYPE_EMAIL_CLICK: ActivityType
ACTIVITY_TYPE_PAGE_VIEW: ActivityType
ACTIVITY_TYPE_FORM_SUBMIT: ActivityType
ACTIVITY_TYPE_PURCHASE: ActivityType
ACTIVITY_TYPE_EVENT_ATTENDED: ActivityType
ACTIVITY_TYPE_DEMO_REQUEST: ActivityType
ACTIVITY_TYPE_UNSUBSCRIBE: ActivityType
LEAD_STATUS_UNSPECIFIED: LeadStatus
LEAD_STATUS_NEW: LeadStatus
LEAD_STATUS_MQL: LeadStatus
LEAD_STATUS_SQL: LeadStatus
LEAD_STATUS_OPPORTUNITY: LeadStatus
LEAD_STATUS_CUSTOMER: LeadStatus
LEAD_STATUS_LOST: LeadStatus
LEAD_GRADE_UNSPECIFIED: LeadGrade
LEAD_GRADE_A: LeadGrade
LEAD_GRADE_B: LeadGrade
LEAD_GRADE_C: LeadGrade
LEAD_GRADE_D: LeadGrade

class Activity(_message.Message):
    __slots__ = ("type", "occurred_at", "value", "attributes")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    type: ActivityType
    occurred_at: _timestamp_pb2.Timestamp
    value: float
    attributes: _struct_pb2.Struct
    def __init__(self, type: _Optional[_Union[ActivityType, str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ScoreReason(_message.Message):
    __slots__ = ("rule", "points", "description")
    RULE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    rule: str
    points: float
    description: str
    def __init__(self, rule: _Optional[str] = ..., points: _Optional[float] = ..., description: _Optional[str] = ...) -> None: ...

class Lead(_message.Message):
    __slots__ = ("contact_id", "status", "score", "grade", "reasons", "scored_at", "status_changed_at", "activity_count")
    CONTACT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCORED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_COUNT_FIELD_NUMBER: _ClassVar[int]
    contact_id: str
    status: LeadStatus
    score: int
    grade: LeadGrade
    reasons: _containers.RepeatedCompositeFieldContainer[ScoreReason]
    scored_at: _timestamp_pb2.Timestamp
    status_changed_at: _timestamp_pb2.Timestamp
    activity_count: int
    def __init__(self, contact_id: _Optional[str] = ..., status: _Optional[_Union[LeadStatus, str]] = ..., score: _Optional[int] = ..., grade: _Optional[_Union[LeadGrade, str]] = ..., reasons: _Optional[_Iterable[_Union[ScoreReason, _Mapping]]] = ..., scored_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., activity_count: _Optional[int] = ...) -> None: ...

class ContactRef(_message.Message):
    __slots__ = ("id", "email")
    ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    email: str
    def __init__(self, id: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class RecordActivityRequest(_message.Message):
    __slots__ = ("contact", "activity", "idempotency_key")
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    contact: ContactRef
    activity: Activity
    idempotency_key: str
    def __init__(self, contact: _Optional[_Union[ContactRef, _Mapping]] = ..., activity: _Optional[_Union[Activity, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RecordActivityResponse(_message.Message):
    __slots__ = ("activity_id", "lead")
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    LEAD_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    lead: Lead
    def __init__(self, activity_id: _Optional[str] = ..., lead: _Optional[_Union[Lead, _Mapping]] = ...) -> None: ...

class ScoreLeadRequest(_message.Message):
    __slots__ = ("contact",)
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    contact: ContactRef
    def __init__(self, contact: _Optional[_Union[ContactRef, _Mapping]] = ...) -> None: ...

class ScoreLeadResponse(_message.Message):
    __slots__ = ("lead",)
    LEAD_FIELD_NUMBER: _ClassVar[int]
    lead: Lead
    def __init__(self, lead: _Optional[_Union[Lead, _Mapping]] = ...) -> None: ...

class UpdateLeadStatusRequest(_message.Message):
    __slots__ = ("contact", "status", "reason", "idempotency_key")
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    contact: ContactRef
    status: LeadStatus
    reason: str
    idempotency_key: str
    def __init__(self, contact: _Optional[_Union[ContactRef, _Mapping]] = ..., status: _Optional[_Union[LeadStatus, str]] = ..., reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class UpdateLeadStatusResponse(_message.Message):
    __slots__ = ("lead", "run_id")
    LEAD_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    lead: Lead
    run_id: str
    def __init__(self, lead: _Optional[_Union[Lead, _Mapping]] = ..., run_id: _Optional[str] = ...) -> None: ...

class GetLeadRequest(_message.Message):
    __slots__ = ("contact",)
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    contact: ContactRef
    def __init__(self, contact: _Optional[_Union[ContactRef, _Mapping]] = ...) -> None: ...

class GetLeadResponse(_message.Message):
    __slots__ = ("lead",)
    LEAD_FIELD_NUMBER: _ClassVar[int]
    lead: Lead
    def __init__(self, lead: _Optional[_Union[Lead, _Mapping]] = ...) -> None: ...

class ScoreLeadsRequest(_message.Message):
    __slots__ = ("contact",)
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    contact: ContactRef
    def __init__(self, contact: _Optional[_Union[ContactRef, _Mapping]] = ...) -> None: ...

class ScoreLeadsResponse(_message.Message):
    __slots__ = ("index", "lead", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LEAD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    lead: Lead
    error: _common_pb2.ItemError
    def __init__(self, index: _Optional[int] = ..., lead: _Optional[_Union[Lead, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ...) -> None: ...
