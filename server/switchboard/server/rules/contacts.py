"""Pure contact rules: normalization, validation and merging. No I/O."""

from __future__ import annotations

import hashlib
from typing import Literal

from switchboard.server.common.timeutil import set_ts
from switchboard.server.rules.consent import EMAIL_MARKETING, describe_unknown, unknown_purposes
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
COMPOSITES = ("consent", "lists", "attributes", "external_ids", "consents")
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
    if c.consents or c.HasField("consent"):
        _check_consents(c, v, prefix)
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


def _check_consents(c: contacts_pb2.Contact, v: Violations, prefix: str) -> None:
    """Known purposes only; `consent` and `consents["email_marketing"]` made one record.

    A caller may write either (old clients know only `consent`); the incoming contact then
    carries both, so every later step (merge, compare, store) sees them agree.
    """
    if unknown := unknown_purposes(sorted(c.consents)):
        v.add(prefix + "consents", describe_unknown(unknown))
    for purpose, record in c.consents.items():
        if len(record.source) > MAX_LIST_NAME:
            check_length(v, f"{prefix}consents[{purpose}].source", record.source, MAX_LIST_NAME)
    marketing = c.consents.get(EMAIL_MARKETING)
    if marketing is None:
        if c.HasField("consent"):
            c.consents[EMAIL_MARKETING].CopyFrom(c.consent)
    elif not c.HasField("consent"):
        c.consent.CopyFrom(marketing)
    elif marketing.opt_in != c.consent.opt_in:
        v.add(
            prefix + "consents",
            f"[{EMAIL_MARKETING!r}] says opt_in={str(marketing.opt_in).lower()} but consent "
            f"says opt_in={str(c.consent.opt_in).lower()}: they are the same record; "
            "send one of them, or both equal",
        )


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
            elif path == "consents":
                _merge_consents(out, incoming, now_us)
            else:
                setattr(out, path, getattr(incoming, path))
        _mirror_marketing(out, "consent" in mask, "consents" in mask)
        return out
    for name in SCALARS:
        value = getattr(incoming, name)
        if value:
            setattr(out, name, value)
    if incoming.HasField("consent"):
        _set_consent(out, incoming, now_us)
    _merge_consents(out, incoming, now_us)
    out.lists.extend(name for name in incoming.lists if name not in out.lists)
    out.attributes.update(incoming.attributes)
    out.external_ids.update(incoming.external_ids)
    return out


def _set_consent(out: contacts_pb2.Contact, incoming: contacts_pb2.Contact, now_us: int) -> None:
    out.consent.CopyFrom(incoming.consent)
    if not incoming.consent.HasField("updated_at"):
        set_ts(out.consent.updated_at, now_us)


def _merge_consents(out: contacts_pb2.Contact, incoming: contacts_pb2.Contact, now_us: int) -> None:
    for purpose, record in incoming.consents.items():
        into = out.consents[purpose]
        into.CopyFrom(record)
        if not record.HasField("updated_at"):
            set_ts(into.updated_at, now_us)


def _mirror_marketing(out: contacts_pb2.Contact, consent: bool, consents: bool) -> None:
    """After a masked write of one of the two, make the other say the same."""
    if consent and not consents:
        if out.HasField("consent"):
            out.consents[EMAIL_MARKETING].CopyFrom(out.consent)
        else:
            out.consents.pop(EMAIL_MARKETING, None)
    elif consents and not consent:
        if EMAIL_MARKETING in out.consents:
            out.consent.CopyFrom(out.consents[EMAIL_MARKETING])
        else:
            out.ClearField("consent")  # the replaced map no longer grants it: withdrawn


def stamp_consents(contact: contacts_pb2.Contact, now_us: int) -> None:
    """Give every consent record without a time the time of the write."""
    if contact.HasField("consent") and not contact.consent.HasField("updated_at"):
        set_ts(contact.consent.updated_at, now_us)
    for record in contact.consents.values():
        if not record.HasField("updated_at"):
            set_ts(record.updated_at, now_us)


def _same_consents(a: contacts_pb2.Contact, b: contacts_pb2.Contact) -> bool:
    """Equal opt-ins and sources (times ignored: re-sending a consent changes nothing)."""
    if (a.consent.opt_in, a.consent.source) != (b.consent.opt_in, b.consent.source):
        return False
    if set(a.consents) != set(b.consents):
        return False
    return all(
        (r.opt_in, r.source) == (b.consents[p].opt_in, b.consents[p].source)
        for p, r in a.consents.items()
    )


def same_data(a: contacts_pb2.Contact, b: contacts_pb2.Contact) -> bool:
    """True when nothing a caller can set differs (timestamps and version ignored)."""
    if _same_consents(a, b):
        a_cmp, b_cmp = contacts_pb2.Contact(), contacts_pb2.Contact()
        a_cmp.CopyFrom(a)
        b_cmp.CopyFrom(b)
        for c in (a_cmp, b_cmp):
            for name in _OUTPUT_ONLY:
                c.ClearField(name)
            c.ClearField("consent")
            c.ClearField("consents")
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
