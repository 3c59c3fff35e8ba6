"""Conversions from keyword arguments to request messages."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

if TYPE_CHECKING:
    # The typed base of every generated enum wrapper (types-protobuf); its value type is
    # the enum's `ValueType`, so a converted value fits the request field.
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

from switchboard.v1 import (
    campaigns_pb2,
    connectors_pb2,
    contacts_pb2,
    leads_pb2,
)

__all__ = [
    "ContactFields",
    "enum_value",
    "lookup",
    "pick",
    "to_contact",
    "to_ref",
    "to_struct",
    "to_timestamp",
    "with_idempotency_key",
]

M = TypeVar("M", bound=Message)
E = TypeVar("E", bound=int)

# The requests of the writes: each carries an idempotency key.
W = TypeVar(
    "W",
    contacts_pb2.UpsertContactRequest,
    contacts_pb2.DeleteContactRequest,
    leads_pb2.RecordActivityRequest,
    leads_pb2.UpdateLeadStatusRequest,
    campaigns_pb2.TriggerCampaignRequest,
    connectors_pb2.InvokeConnectorRequest,
)


class ContactFields(TypedDict, total=False):
    """A contact as keyword arguments or a dict; every key is optional.

    `consent` is the marketing-email opt-in flag and `consent_source` where it was given;
    `consents` maps consent purposes (`analytics`, `personalization`, ...) to opt-in flags,
    given at `consent_source` too; the other keys are the `Contact` message's fields of the
    same name.
    """

    id: str
    email: str
    phone: str
    first_name: str
    last_name: str
    company: str
    job_title: str
    country: str
    lists: Iterable[str]
    attributes: Mapping[str, str]
    consent: bool
    consent_source: str
    consents: Mapping[str, bool]


_CONTACT_KEYS = ContactFields.__optional_keys__


def to_contact(value: contacts_pb2.Contact | ContactFields) -> contacts_pb2.Contact:
    """Returns a `Contact` message from a message (as is) or from `ContactFields`."""
    if isinstance(value, contacts_pb2.Contact):
        return value
    # Keyword arguments typed with `Unpack` are checked by type checkers only; a typo such
    # as `firstname=` must not be dropped silently at run time.
    unknown = value.keys() - _CONTACT_KEYS
    if unknown:
        raise TypeError(f"unknown contact field(s): {', '.join(sorted(unknown))}")
    consent = value.get("consent")
    source = value.get("consent_source")
    consents = value.get("consents") or {}
    if consent is None and not consents and source is not None:
        raise ValueError("consent_source needs consent= or consents=")
    return contacts_pb2.Contact(
        id=value.get("id"),
        email=value.get("email"),
        phone=value.get("phone"),
        first_name=value.get("first_name"),
        last_name=value.get("last_name"),
        company=value.get("company"),
        job_title=value.get("job_title"),
        country=value.get("country"),
        lists=value.get("lists"),
        attributes=value.get("attributes"),
        consent=None if consent is None else contacts_pb2.Consent(opt_in=consent, source=source),
        consents={
            purpose: contacts_pb2.Consent(opt_in=opt_in, source=source)
            for purpose, opt_in in consents.items()
        },
    )


def lookup(id: str | None, email: str | None) -> None:
    """Checks that exactly one of `id` and `email` is given."""
    if (id is None) == (email is None):
        raise TypeError("pass exactly one of id= or email=")


def to_ref(value: str | leads_pb2.ContactRef) -> leads_pb2.ContactRef:
    """Returns a `ContactRef`: strings containing `@` are emails, other strings ids."""
    if isinstance(value, leads_pb2.ContactRef):
        return value
    if "@" in value:
        return leads_pb2.ContactRef(email=value)
    return leads_pb2.ContactRef(id=value)


def enum_value(enum_type: _EnumTypeWrapper[E], value: str | int) -> E:
    """Returns the value of a generated enum given as a number or a name.

    Names may be short and in any case (`email_click`) or in full (`ACTIVITY_TYPE_EMAIL_CLICK`).
    Numbers pass through unchecked: a newer server may know values this client does not.
    """
    if isinstance(value, int):
        return cast(E, value)
    descriptor = enum_type.DESCRIPTOR
    # Every enum of the contract names its zero value `<PREFIX>_UNSPECIFIED`.
    prefix = descriptor.values_by_number[0].name.removesuffix("UNSPECIFIED")
    name = value.upper()
    if not name.startswith(prefix):
        name = prefix + name
    if name not in descriptor.values_by_name:
        choices = ", ".join(v.name.removeprefix(prefix).lower() for v in descriptor.values[1:])
        raise ValueError(f"unknown {descriptor.name} {value!r}; expected one of: {choices}")
    return enum_type.Value(name)


def to_timestamp(value: datetime | Timestamp | None) -> Timestamp | None:
    """A `Timestamp` from a datetime (naive ones are taken as UTC), or `value` as it is."""
    if value is None or isinstance(value, Timestamp):
        return value
    timestamp = Timestamp()
    timestamp.FromDatetime(value)
    return timestamp


def to_struct(value: Mapping[str, Any] | Struct | None) -> Struct | None:
    """Returns a `Struct` from a JSON-like mapping (`None` and structs pass through)."""
    if value is None or isinstance(value, Struct):
        return value
    struct = Struct()
    struct.update(value)
    return struct


def with_idempotency_key(request: W, key: str | None) -> W:
    """Returns the request carrying `key`, else its own key, else a fresh one.

    The key is chosen once per client call, before the channel sees the request, so the
    channel's transparent retries resend it and the server applies the write once. A
    request passed in by the caller is copied, never changed.
    """
    if key is None and request.idempotency_key:
        return request
    keyed = type(request)()
    keyed.CopyFrom(request)
    keyed.idempotency_key = key or uuid.uuid4().hex
    return keyed


def pick(request: M | None, build: Callable[[], M], *fields: object) -> M:
    """Returns `request` when given, else `build()`; `fields` must be unset with a request."""
    if request is None:
        return build()
    if any(field is not None for field in fields):
        raise TypeError("pass either request= or keyword fields, not both")
    return request
