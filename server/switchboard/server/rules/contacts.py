"""Pure contact rules: normalization, validation and merging. No I/O."""

from __future__ import annotations

import hashlib
from typing import Literal

from switchboard.server.common.timeutil import set_ts
from switchboard.server.rules.validation import (
    MAX_LIST_NAME,
    MAX_MASK_PATHS,
    MAX_NAME,
    Violations,
    check_country,
    check_email,
    check_id,
    check_length,
    check_names,
    check_phone,
    check_string_map,
)
from switchboard.v1 import contacts_pb2

SCALARS = ("email", "phone", "first_name", "last_name", "company", "job_title", "country")
COMPOSITES = ("consent", "lists", "attributes", "external_ids")
MASKABLE = frozenset(SCALARS + COMPOSITES)
# Literal types: the typed stubs accept only field names in ClearField.
_OUTPUT_ONLY: tuple[Literal["created_at", "updated_at", "version"], ...] = (
    "created_at",
    "updated_at",
    "version",
)


def email_hash(email: str) -> str:
    """What a tombstone keeps of an email: enough to recognise it, not to read it."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


def normalize_contact(
    contact: contacts_pb2.Contact, v: Violations, prefix: str
) -> contacts_pb2.Contact:
    """A validated, normalized copy; problems go to `v` under `prefix` (e.g. `contact.`).

    Every upsert, trigger and imported row comes through here, so unset fields are skipped
    and a field is written back only when normalizing changed it.
    """
    c = contacts_pb2.Contact()
    c.CopyFrom(contact)
    for output_only in _OUTPUT_ONLY:
        c.ClearField(output_only)  # output only: never trusted from a caller
    if c.id:
        check_id(v, prefix + "id", c.id, "c", required=False)
    if c.email:
        c.email = check_email(v, prefix + "email", c.email)
    if c.phone:
        c.phone = check_phone(v, prefix + "phone", c.phone)
    if c.country:
        c.country = check_country(v, prefix + "country", c.country)
    for name in _NAMES:
        value = getattr(c, name)
        if value:
            stripped = value.strip()
            if stripped != value:
                setattr(c, name, stripped)
            if len(stripped) > MAX_NAME:
                check_length(v, prefix + name, stripped, MAX_NAME)
    if len(c.consent.source) > MAX_LIST_NAME:
        check_length(v, prefix + "consent.source", c.consent.source, MAX_LIST_NAME)
    if c.lists:
        names = check_names(v, prefix + "lists", c.lists)
        if names != list(c.lists):
            del c.lists[:]
            c.lists.extend(names)
    if c.attributes:
        check_string_map(v, prefix + "attributes", c.attributes)
    if c.external_ids:
        check_string_map(v, prefix + "external_ids", c.external_ids)
    return c


_NAMES = ("first_name", "last_name", "company", "job_title")


def check_mask(paths: list[str], v: Violations) -> None:
    """Only top-level, maskable contact fields may be named."""
    if len(paths) > MAX_MASK_PATHS:
        v.add("update_mask", f"must name at most {MAX_MASK_PATHS} paths")
        return
    for path in paths:
        if path not in MASKABLE:
            v.add(
                "update_mask",
                f"{path!r} cannot be updated (allowed: {', '.join(sorted(MASKABLE))})",
            )


def merge(
    current: contacts_pb2.Contact, incoming: contacts_pb2.Contact, mask: list[str], now_us: int
) -> contacts_pb2.Contact:
    """The contact after applying `incoming` to `current` (see UpsertContactRequest docs)."""
    out = contacts_pb2.Contact()
    out.CopyFrom(current)
    if mask:
        for path in mask:
            out.ClearField(path)  # type: ignore[arg-type]  # mask paths are checked against MASKABLE
            if path in ("lists",):
                out.lists.extend(incoming.lists)
            elif path in ("attributes", "external_ids"):
                getattr(out, path).update(getattr(incoming, path))
            elif path == "consent":
                if incoming.HasField("consent"):
                    _set_consent(out, incoming, now_us)
            else:
                setattr(out, path, getattr(incoming, path))
        return out
    for name in SCALARS:
        value = getattr(incoming, name)
        if value:
            setattr(out, name, value)
    if incoming.HasField("consent"):
        _set_consent(out, incoming, now_us)
    out.lists.extend(name for name in incoming.lists if name not in out.lists)
    out.attributes.update(incoming.attributes)
    out.external_ids.update(incoming.external_ids)
    return out


def _set_consent(out: contacts_pb2.Contact, incoming: contacts_pb2.Contact, now_us: int) -> None:
    out.consent.CopyFrom(incoming.consent)
    if not incoming.consent.HasField("updated_at"):
        set_ts(out.consent.updated_at, now_us)


def same_data(a: contacts_pb2.Contact, b: contacts_pb2.Contact) -> bool:
    """True when nothing a caller can set differs (timestamps and version ignored)."""
    if a.consent.opt_in == b.consent.opt_in and a.consent.source == b.consent.source:
        a_cmp, b_cmp = contacts_pb2.Contact(), contacts_pb2.Contact()
        a_cmp.CopyFrom(a)
        b_cmp.CopyFrom(b)
        for c in (a_cmp, b_cmp):
            for name in _OUTPUT_ONLY:
                c.ClearField(name)
            c.ClearField("consent")
        return a_cmp == b_cmp
    return False


def changed_fields(before: contacts_pb2.Contact | None, after: contacts_pb2.Contact) -> list[str]:
    """Names of caller-settable fields whose value differs (set fields, for a new contact)."""
    # ListFields walks only the fields that are set, in C: far cheaper than reading all eleven.
    now = {fd.name: value for fd, value in after.ListFields() if fd.name in _SETTABLE}
    if before is None:
        return [name for name in _ORDER if name in now]
    then = {fd.name: value for fd, value in before.ListFields() if fd.name in _SETTABLE}
    return [name for name in _ORDER if now.get(name) != then.get(name)]


_ORDER = (*SCALARS, *COMPOSITES)
_SETTABLE = frozenset(_ORDER)
