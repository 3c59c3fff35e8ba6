"""Field checks shared by every use-case. Each returns normalized values and collects
`Violation`s instead of raising, so one response can name every bad field at once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.server.errors import InvalidArgument, Violation

MAX_NAME = 200
MAX_EMAIL = 254
MAX_LISTS = 100
MAX_LIST_NAME = 128
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY = 128
MAX_ATTRIBUTE_VALUE = 2048
MAX_IDEMPOTENCY_KEY = 128
MAX_STRUCT_BYTES = 64 * 1024
MAX_PAGE_TOKEN = 512
MAX_KEY_NAME = 128  # connector, action and event names
MAX_MASK_PATHS = 32
# A status's details travel in trailers, which gRPC bounds (8 KiB by default): keep them short.
MAX_VIOLATIONS = 20
MAX_DESCRIPTION = 200

# Pragmatic address check: one @, a dotted domain, no spaces. Full RFC 5322 accepts
# addresses no ESP will deliver to.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_PHONE_NOISE = re.compile(r"[\s\-().]")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_ID = re.compile(r"^[a-z]_[0-9A-Z]{26}$")


class Violations:
    """Collects field violations; `raise_if_any` turns them into INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self.items: list[Violation] = []

    def add(self, field: str, description: str) -> None:
        """Record one problem; descriptions and the count are capped to fit a trailer."""
        if len(self.items) >= MAX_VIOLATIONS:
            return
        if len(description) > MAX_DESCRIPTION:
            description = description[: MAX_DESCRIPTION - 1] + "…"
        self.items.append(Violation(field[:MAX_DESCRIPTION], description))

    def raise_if_any(self) -> None:
        """Raise InvalidArgument naming every recorded field."""
        if self.items:
            raise InvalidArgument(self.items)


def normalize_email(value: str) -> str:
    """Trimmed and lower-cased: the form emails are stored and compared in."""
    return value.strip().lower()


def check_email(v: Violations, field: str, value: str, *, required: bool = False) -> str:
    """Validate and normalize an email; '' when absent and not required."""
    email = normalize_email(value)
    if not email:
        if required:
            v.add(field, "is required")
        return ""
    if len(email) > MAX_EMAIL:
        v.add(field, f"must be at most {MAX_EMAIL} characters")
    elif not _EMAIL.match(email):
        v.add(field, f"{value!r} is not an email address (expected name@domain.tld)")
    return email


def check_phone(v: Violations, field: str, value: str) -> str:
    """Validate a phone number in E.164 after removing spaces, dashes, dots and parentheses."""
    phone = _PHONE_NOISE.sub("", value)
    if phone and not _E164.match(phone):
        v.add(field, f"{value!r} is not an E.164 number (expected e.g. +14155550100)")
    return phone


def check_country(v: Violations, field: str, value: str) -> str:
    """Validate an ISO 3166-1 alpha-2 code."""
    country = value.strip().upper()
    if country and not _COUNTRY.match(country):
        v.add(field, f"{value!r} is not an ISO 3166-1 alpha-2 code (expected e.g. FR)")
    return country


def check_length(v: Violations, field: str, value: str, limit: int) -> None:
    """Flag strings longer than `limit` characters."""
    if len(value) > limit:
        v.add(field, f"must be at most {limit} characters (got {len(value)})")


def check_id(v: Violations, field: str, value: str, prefix: str, *, required: bool) -> None:
    """Flag ids that cannot be ours (wrong prefix or shape)."""
    if not value:
        if required:
            v.add(field, "is required")
        return
    if not _ID.match(value) or not value.startswith(prefix + "_"):
        v.add(field, f"{value!r} is not a valid id (expected {prefix}_ followed by 26 characters)")


def check_names(v: Violations, field: str, values: Iterable[str]) -> list[str]:
    """Validate list names: non-empty, bounded, de-duplicated in order."""
    names = list(dict.fromkeys(s.strip() for s in values))
    if len(names) > MAX_LISTS:
        v.add(field, f"must have at most {MAX_LISTS} entries")
    for i, name in enumerate(names):
        if not name:
            v.add(f"{field}[{i}]", "must not be empty")
        check_length(v, f"{field}[{i}]", name, MAX_LIST_NAME)
    return names


def check_string_map(v: Violations, field: str, values: Mapping[str, str]) -> None:
    """Validate a map<string,string>: entry count, key and value sizes."""
    if len(values) > MAX_ATTRIBUTES:
        v.add(field, f"must have at most {MAX_ATTRIBUTES} entries")
    for key, value in values.items():
        if not key or len(key) > MAX_ATTRIBUTE_KEY:
            v.add(f"{field}[{key!r}]", f"keys must be 1 to {MAX_ATTRIBUTE_KEY} characters")
        check_length(v, f"{field}[{key!r}]", value, MAX_ATTRIBUTE_VALUE)


def check_struct(v: Violations, field: str, value: Struct) -> None:
    """Bound a free-form Struct by entries and encoded size."""
    if len(value.fields) > MAX_ATTRIBUTES:
        v.add(field, f"must have at most {MAX_ATTRIBUTES} entries")
    if value.ByteSize() > MAX_STRUCT_BYTES:
        v.add(field, f"must encode to at most {MAX_STRUCT_BYTES} bytes")


def check_idempotency_key(v: Violations, value: str) -> None:
    """Bound the key's length; empty means 'no idempotency'."""
    check_length(v, "idempotency_key", value, MAX_IDEMPOTENCY_KEY)


def check_page_size(v: Violations, value: int, default: int, maximum: int) -> int:
    """Apply the default; refuse negatives and values over the cap."""
    if value < 0:
        v.add("page_size", "must not be negative")
    elif value > maximum:
        v.add("page_size", f"must be at most {maximum}")
    return value or default


def require_lookup(v: Violations, msg: Any, field: str = "lookup") -> str:
    """The name of the set member of a `lookup` oneof, or a violation when none is set."""
    which = msg.WhichOneof("lookup")
    if which is None:
        v.add(field, "set either id or email")
        return ""
    return str(which)
