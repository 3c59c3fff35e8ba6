"""The values of each typed event, split into what stays clear and what is sealed.

Clear: what is not about the person (ids, versions, counts, amounts, statuses, times), so
counts and aggregates survive erasure. Sealed: the person's data (the contact itself,
activity attributes, answers of tools, error texts, free-text reasons).
"""

from __future__ import annotations

from google.protobuf.struct_pb2 import Struct

from switchboard.v1 import contacts_pb2, events_pb2, leads_pb2

Split = tuple[events_pb2.Event, events_pb2.Event]


def contact_changed(
    contact: contacts_pb2.Contact, fields: list[str], by: str = "", run_id: str = ""
) -> Split:
    """A contact written: its id, version and the fields set stay clear; its values sealed."""
    clear = events_pb2.Event()
    change = clear.contact_changed
    change.contact.id = contact.id
    change.contact.version = contact.version
    change.fields.extend(fields)
    change.by = by
    change.run_id = run_id
    personal = events_pb2.Event()
    personal.contact_changed.contact.CopyFrom(contact)
    return clear, personal


def activity_recorded(
    activity_id: str,
    kind: int,
    occurred_us: int,
    value: float,
    attributes: Struct,
    lead: leads_pb2.Lead | None = None,
) -> Split:
    """An activity: type, time and value (the amount of a purchase) clear; attributes and
    the lead re-scored after it sealed."""
    clear = events_pb2.Event()
    recorded = clear.activity_recorded
    recorded.activity_id = activity_id
    recorded.activity.type = kind  # type: ignore[assignment]  # an int from ActivityType
    seconds, micros = divmod(occurred_us, 1_000_000)
    recorded.activity.occurred_at.seconds = seconds
    recorded.activity.occurred_at.nanos = micros * 1000
    recorded.activity.value = value
    personal = events_pb2.Event()
    if attributes.fields:
        personal.activity_recorded.activity.attributes.CopyFrom(attributes)
    if lead is not None:
        personal.activity_recorded.lead.CopyFrom(lead)
    return clear, personal


def run_step(
    run_event: str,
    step: int,
    connector: str,
    action: str,
    status: int,
    attempts: int,
    skip_reason: str = "",
    error: str = "",
    result: Struct | None = None,
    variant: str = "",
) -> Split:
    """A step's outcome: where and how it ended clear; the error text and answer sealed."""
    clear = events_pb2.Event()
    out = clear.run_step
    out.run_event = run_event
    out.step = step
    out.connector = connector
    out.action = action
    out.status = status  # type: ignore[assignment]  # an int from StepStatus
    out.attempts = attempts
    out.skip_reason = skip_reason
    out.variant = variant
    personal = events_pb2.Event()
    if error:
        personal.run_step.error = error
    if result is not None and result.fields:
        personal.run_step.result.CopyFrom(result)
    return clear, personal


def lead_status_changed(
    previous: int, status: int, reason: str, lead: leads_pb2.Lead | None = None
) -> Split:
    """A lead's move: both statuses clear; the caller's reason (free text) and the lead
    as stored after the move sealed."""
    clear = events_pb2.Event()
    clear.lead_status_changed.previous = previous  # type: ignore[assignment]
    clear.lead_status_changed.status = status  # type: ignore[assignment]
    personal = events_pb2.Event()
    if reason:
        personal.lead_status_changed.reason = reason
    if lead is not None:
        personal.lead_status_changed.lead.CopyFrom(lead)
    return clear, personal


def lead_scored(lead: leads_pb2.Lead) -> Split:
    """A stored score: all of it sealed (a score is a judgement about the person)."""
    clear = events_pb2.Event()
    clear.lead_scored.SetInParent()  # the type of values stays readable once redacted
    personal = events_pb2.Event()
    personal.lead_scored.lead.CopyFrom(lead)
    return clear, personal
