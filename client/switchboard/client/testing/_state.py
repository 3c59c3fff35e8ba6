"""The in-memory data of `FakeSwitchboard` and the rules it applies to it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import code_pb2, error_details_pb2, status_pb2

from switchboard.v1 import campaigns_pb2, common_pb2, connectors_pb2, contacts_pb2, leads_pb2

Mode = contacts_pb2.UpsertMode
_POINTS = 10  # every activity scores the same: the fake is about flows, not scoring rules
_GRADES = ((80, leads_pb2.LEAD_GRADE_A), (50, leads_pb2.LEAD_GRADE_B), (20, leads_pb2.LEAD_GRADE_C))


class Refusal(Exception):
    """A call the fake answers with an error status, as the real server would."""

    def __init__(
        self, code: grpc.StatusCode, message: str, violations: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.violations = list(violations)

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        """The rich status (google.rpc.Status with BadRequest) that carries the violations."""
        if not self.violations:
            return ()
        bad_request = error_details_pb2.BadRequest()
        for name, description in self.violations:
            bad_request.field_violations.add(field=name, description=description)
        status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=self.message)
        status.details.add().Pack(bad_request)
        return (("grpc-status-details-bin", status.SerializeToString()),)


def _invalid(name: str, description: str) -> Refusal:
    message = f"{name}: {description}"
    return Refusal(grpc.StatusCode.INVALID_ARGUMENT, message, [(name, description)])


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


@dataclass
class Call:
    """One call the fake received: the method's name, its request(s) and metadata."""

    method: str
    request: Message | list[Message]
    metadata: dict[str, str]


@dataclass
class State:
    """Everything the fake holds; tests may read it, and seed it before calls."""

    triggers: dict[str, list[tuple[str, str]]]
    contacts: dict[str, contacts_pb2.Contact] = field(default_factory=dict)
    leads: dict[str, leads_pb2.Lead] = field(default_factory=dict)
    runs: dict[str, campaigns_pb2.Run] = field(default_factory=dict)
    dead_letters: list[connectors_pb2.DeadLetter] = field(default_factory=list)
    invocations: list[connectors_pb2.InvokeConnectorRequest] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    replies: dict[tuple[str, str], Message] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        """A fresh id such as `c_1`, `r_2`."""
        return f"{prefix}_{next(self._ids)}"

    def once(self, method: str, key: str, work: Callable[[], Message]) -> Message:
        """`work()`, or the reply already given to `method` with this idempotency key."""
        if not key:
            return work()
        if (method, key) not in self.replies:
            self.replies[method, key] = work()
        return self.replies[method, key]

    # Contacts -------------------------------------------------------------------------

    def find(self, contact_id: str, email: str) -> contacts_pb2.Contact | None:
        """The contact with this id, else with this email."""
        if contact_id:
            return self.contacts.get(contact_id)
        return next((c for c in self.contacts.values() if c.email == email.lower()), None)

    def lookup(self, contact_id: str, email: str) -> contacts_pb2.Contact:
        """As `find`, but NOT_FOUND (or INVALID_ARGUMENT without either) instead of None."""
        if not contact_id and not email:
            raise _invalid("lookup", "set either id or email")
        found = self.find(contact_id, email)
        if found is None:
            which = f"id {contact_id!r}" if contact_id else f"email {email!r}"
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"no contact with {which}")
        return found

    def upsert(
        self,
        incoming: contacts_pb2.Contact,
        *,
        mode: int = Mode.UPSERT_MODE_UPSERT,
        expected_version: int = 0,
        mask: Sequence[str] = (),
    ) -> tuple[contacts_pb2.Contact, str]:
        """Creates or merges a contact; returns it and `created`, `updated` or `unchanged`."""
        if incoming.email and "@" not in incoming.email:
            raise _invalid("contact.email", "is not an email address")
        current = self.find(incoming.id, incoming.email)
        if current is None:
            if incoming.id:
                raise Refusal(grpc.StatusCode.NOT_FOUND, f"no contact with id {incoming.id}")
            if mode == Mode.UPSERT_MODE_UPDATE_ONLY:
                message = f"no contact with email {incoming.email!r}"
                raise Refusal(grpc.StatusCode.NOT_FOUND, message)
            if not incoming.email:
                raise _invalid("contact.email", "is required to create a contact")
            return self._create(incoming), "created"
        if mode == Mode.UPSERT_MODE_CREATE_ONLY:
            raise Refusal(grpc.StatusCode.ALREADY_EXISTS, f"contact {current.id} already exists")
        if expected_version and expected_version != current.version:
            raise Refusal(
                grpc.StatusCode.ABORTED, f"contact {current.id} is at version {current.version}"
            )
        merged = _merge(current, incoming, mask)
        if merged == current:
            return current, "unchanged"
        merged.version = current.version + 1
        merged.updated_at.CopyFrom(_now())
        self.contacts[merged.id] = merged
        return merged, "updated"

    def _create(self, incoming: contacts_pb2.Contact) -> contacts_pb2.Contact:
        contact = contacts_pb2.Contact()
        contact.CopyFrom(incoming)
        contact.id = self.new_id("c")
        contact.email = contact.email.lower()
        contact.version = 1
        contact.created_at.CopyFrom(_now())
        contact.updated_at.CopyFrom(contact.created_at)
        self.contacts[contact.id] = contact
        return contact

    # Leads ----------------------------------------------------------------------------

    def lead(self, ref: leads_pb2.ContactRef) -> leads_pb2.Lead:
        """The contact's lead, a new one when it has none."""
        contact = self.lookup(ref.id, ref.email)
        if contact.id not in self.leads:
            self.leads[contact.id] = leads_pb2.Lead(
                contact_id=contact.id, status=leads_pb2.LEAD_STATUS_NEW, grade=_grade(0)
            )
        return self.leads[contact.id]

    def record_activity(self, ref: leads_pb2.ContactRef, activity: leads_pb2.Activity) -> None:
        """Adds `_POINTS` for the activity and re-grades the lead."""
        lead = self.lead(ref)
        lead.activity_count += 1
        lead.score += _POINTS
        lead.grade = _grade(lead.score)
        name = leads_pb2.ActivityType.Name(activity.type).lower()
        lead.reasons.add(rule=name, points=_POINTS, description=f"activity {name}")
        lead.scored_at.CopyFrom(_now())

    # Campaigns ------------------------------------------------------------------------

    def start_run(
        self, event: str, contact: contacts_pb2.Contact, attributes: Struct
    ) -> campaigns_pb2.Run:
        """A run of `event`'s trigger whose steps all succeed at once."""
        if event not in self.triggers:
            known = ", ".join(sorted(self.triggers)) or "none"
            raise Refusal(
                grpc.StatusCode.NOT_FOUND,
                f"no trigger is configured for event {event!r} (configured: {known})",
            )
        stored, _ = self.upsert(contact)
        now = _now()
        run = campaigns_pb2.Run(
            id=self.new_id("r"),
            event=event,
            contact_id=stored.id,
            status=campaigns_pb2.RUN_STATUS_SUCCEEDED,
            attributes=attributes,
            created_at=now,
            updated_at=now,
            finished_at=now,
        )
        for index, (connector, action) in enumerate(self.triggers[event]):
            run.steps.add(
                index=index,
                connector=connector,
                action=action,
                status=campaigns_pb2.STEP_STATUS_SUCCEEDED,
                attempts=1,
                updated_at=now,
            )
        self.runs[run.id] = run
        return run

    def connectors(self) -> dict[str, list[str]]:
        """Each connector named by a trigger step, with the actions the steps use."""
        found: dict[str, list[str]] = {}
        for steps in self.triggers.values():
            for connector, action in steps:
                actions = found.setdefault(connector, [])
                if action not in actions:
                    actions.append(action)
        return found


def _merge(
    current: contacts_pb2.Contact, incoming: contacts_pb2.Contact, mask: Sequence[str]
) -> contacts_pb2.Contact:
    merged = contacts_pb2.Contact()
    merged.CopyFrom(current)
    if mask:
        for path in mask:
            merged.ClearField(path)  # type: ignore[arg-type]  # the server checks the paths
        incoming_fields = {fd.name for fd, _ in incoming.ListFields()}
        for path in mask:
            if path in incoming_fields:
                _copy_field(merged, incoming, path)
        return merged
    lists = [*merged.lists]
    merged.MergeFrom(incoming)
    merged.id, merged.version = current.id, current.version
    merged.email = merged.email.lower()
    del merged.lists[:]
    merged.lists.extend(dict.fromkeys([*lists, *incoming.lists]))
    return merged


def _copy_field(target: Message, source: Message, name: str) -> None:
    value = getattr(source, name)
    if isinstance(value, Message):
        getattr(target, name).CopyFrom(value)
    elif isinstance(value, Mapping):
        getattr(target, name).update(value)
    elif isinstance(value, str | int | bool | float):
        setattr(target, name, value)
    else:
        getattr(target, name).extend(value)


def _grade(score: int) -> leads_pb2.LeadGrade.ValueType:
    return next((grade for floor, grade in _GRADES if score >= floor), leads_pb2.LEAD_GRADE_D)


def item_error(index: int, key: str, refusal: Refusal) -> common_pb2.ItemError:
    """A per-row error of an import or a bulk call."""
    error = common_pb2.ItemError(
        index=index, code=refusal.code.name, message=refusal.message, key=key
    )
    for name, description in refusal.violations:
        error.field_violations.add(field=name, description=description)
    return error


def page(items: Sequence[Any], size: int, token: str, default: int) -> tuple[list[Any], str]:
    """One page of `items` from an offset token; the next token, empty at the end."""
    if token and not token.isdigit():
        raise _invalid("page_token", "is not a token from a previous page")
    start = int(token or 0)
    end = start + (size or default)
    return list(items[start:end]), (str(end) if end < len(items) else "")
