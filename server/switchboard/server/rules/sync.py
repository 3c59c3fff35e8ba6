"""Pure contact-sync rules: what a destination receives, and what its answer writes back.

No I/O. A sync step's plan keeps the destination's mapping (`StepSync`), not the mapped
record: the record is made from the run's contact when the step is delivered, so erasing the
contact (which reduces every plan's contact to its id) leaves no copy in a mapped record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from switchboard.server.config.sync import SyncDestinationSettings
from switchboard.server.rules.validation import Violations, check_names, check_string_map
from switchboard.v1 import contacts_pb2

#: Always sent, whatever the mapping: the key the tool files the person under, and the
#: consent that per-purpose checks read.
ALWAYS_SENT = ("id", "consent")
_EMPTY: tuple[Any, ...] = ("", None, [], {})


@dataclass(frozen=True, slots=True)
class StepSync:
    """A sync step's destination rules, frozen into its run's plan."""

    mode: str = "upsert"
    fields: Mapping[str, str] = field(default_factory=dict)
    write_back: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, dest: SyncDestinationSettings) -> StepSync:
        """The rules of a configured destination."""
        return cls(dest.mode, dict(dest.fields), dict(dest.write_back))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepSync:
        """Read stored rules."""
        return cls(
            str(data.get("mode", "upsert")),
            dict(data.get("fields") or {}),
            dict(data.get("write_back") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"mode": self.mode, "fields": dict(self.fields), "write_back": dict(self.write_back)}


def read_path(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` (`attributes.plan`), or None where it is missing.

    The first segment is a key; the rest, for maps whose keys may themselves hold dots
    (`attributes`), is one key.
    """
    head, _, rest = path.partition(".")
    value = data.get(head)
    if not rest:
        return value
    return value.get(rest) if isinstance(value, Mapping) else None


def map_contact(contact: Mapping[str, Any], sync: StepSync) -> dict[str, Any]:
    """The record a destination receives for `contact` (a `contact_payload` dict).

    Without `fields`, every field goes under its own name. `upsert` and `update_only` leave
    empty values out (the tool keeps what it has); `mirror` sends them, so the tool clears
    its copy. `id` and `consent` are always sent when the contact has them.
    """
    if sync.fields:
        out = {name: read_path(contact, path) for name, path in sync.fields.items()}
    else:
        out = dict(contact)
    for name in ALWAYS_SENT:
        if name in contact:
            out.setdefault(name, contact[name])
    if sync.mode != "mirror":
        out = {k: v for k, v in out.items() if k in ALWAYS_SENT or v not in _EMPTY}
    return out


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        return text or None
    return None


def apply_write_back(
    contact: contacts_pb2.Contact, write_back: Mapping[str, str], result: Mapping[str, Any]
) -> list[str]:
    """Write the mapped `result` fields into `contact` (in place); return the fields changed.

    A result field that is missing, empty or not a scalar (a list of names for `lists`)
    is skipped. Raises ValueError, changing nothing, when the written contact would break
    the contact limits (an over-long value, too many entries).
    """
    before = contacts_pb2.Contact()
    before.CopyFrom(contact)
    for target, source in write_back.items():
        value = read_path(result, source)
        if target == "lists":
            names = value if isinstance(value, list) else [value]
            texts = [t for t in (_text(n) for n in names) if t]
            contact.lists.extend(t for t in texts if t not in contact.lists)
            continue
        text = _text(value)
        if text is None:
            continue
        kind, _, key = target.partition(".")
        getattr(contact, kind)[key] = text
    v = Violations()
    check_string_map(v, "external_ids", contact.external_ids)
    check_string_map(v, "attributes", contact.attributes)
    check_names(v, "lists", contact.lists)
    if v.items:
        contact.CopyFrom(before)
        raise ValueError("; ".join(f"{i.field}: {i.description}" for i in v.items))
    return [
        name
        for name in ("lists", "attributes", "external_ids")
        if getattr(before, name) != getattr(contact, name)
    ]
