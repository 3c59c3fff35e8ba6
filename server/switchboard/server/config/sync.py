"""Settings for contact sync: which tools every accepted contact write is fanned out to.

Each destination names a connector and the action a change is delivered with, which
contact fields it receives and under which names (`fields`), how it treats them (`mode`),
which events reach it (`events`), and which fields of its answer are written back to the
contact (`write_back`). See docs/contact-sync.md.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from switchboard.server.config.base import FrozenModel

#: Contact fields a `fields` path may start with (`attributes.<key>`, `external_ids.<key>`,
#: `consent.<opt_in|source|updated_at>` name one entry).
CONTACT_PATHS = frozenset(
    {
        "id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "company",
        "job_title",
        "country",
        "consent",
        "lists",
        "attributes",
        "external_ids",
        "version",
    }
)
_MAP_TARGET = re.compile(r"^(attributes|external_ids)\.[A-Za-z0-9_.:-]{1,128}$")
#: Where a write-back may put a result field: a map entry, or a list name added to `lists`.
WRITE_BACK_TARGETS = "external_ids.<key>, attributes.<key> or lists"


def _check_path(path: str) -> str:
    head, _, rest = path.partition(".")
    if head not in CONTACT_PATHS:
        raise ValueError(
            f"{path!r} is not a contact field (fields: {', '.join(sorted(CONTACT_PATHS))})"
        )
    if rest and head not in ("attributes", "external_ids", "consent"):
        raise ValueError(f"{path!r}: only attributes, external_ids and consent have entries")
    return path


class SyncDestinationSettings(FrozenModel):
    """One tool that receives contact changes."""

    connector: str = Field(description="A configured connector's name.")
    action: str = Field(
        default="contacts.upsert", description="The action a contact change is delivered with."
    )
    erase_action: str | None = Field(
        default="contacts.erase",
        description="The action an erasure is delivered with (with `erased` in `events`); "
        "none: the tool is not told.",
    )
    mode: Literal["upsert", "update_only", "mirror"] = Field(
        default="upsert",
        description="`upsert`: create or update, empty fields left out (the tool keeps its "
        "value); `update_only`: only contacts the tool already knows (an "
        "`external_ids[<connector>]` entry), empty fields left out; `mirror`: create or "
        "update with every mapped field, empty ones sent empty so the tool clears them.",
    )
    events: list[Literal["changed", "erased"]] = Field(
        default=["changed", "erased"],
        min_length=1,
        description="`changed`: creates and updates (event `contact.changed`); `erased`: "
        "DeleteContact (event `contact.erased`).",
    )
    fields: dict[str, str] = Field(
        default={},
        description='`{name sent: contact path}`, e.g. `{first = "first_name", plan = '
        '"attributes.plan"}`; empty: every field under its own name. `id` and `consent` '
        "are always sent (the key, and what consent checks read).",
    )
    params: dict[str, Any] = Field(default={}, description="Passed to the action as is.")
    write_back: dict[str, str] = Field(
        default={},
        description="`{contact target: result field}` applied when the delivery succeeds, "
        f"as a versioned write that starts no sync; targets: {WRITE_BACK_TARGETS}, e.g. "
        '`{"external_ids.crm" = "external_id"}`.',
    )

    @field_validator("fields")
    @classmethod
    def _fields_are_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not name:
                raise ValueError("a sent name cannot be empty")
            _check_path(path)
        return value

    @field_validator("write_back")
    @classmethod
    def _write_back_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for target, source in value.items():
            if target != "lists" and not _MAP_TARGET.match(target):
                raise ValueError(f"write-back target {target!r}: use {WRITE_BACK_TARGETS}")
            if not source:
                raise ValueError(f"write-back target {target!r} needs a result field")
        return value

    @model_validator(mode="after")
    def _erasure_has_action(self) -> SyncDestinationSettings:
        if "erased" in self.events and not self.erase_action:
            raise ValueError("events has 'erased' but erase_action is not set")
        return self


def default_destinations() -> dict[str, SyncDestinationSettings]:
    """The embedded CRM, so that a fresh `make run` shows a sync run after an upsert."""
    return {"crm": SyncDestinationSettings(connector="crm")}


#: `sync.chunk_runs`: see `SyncSettings.chunk_runs`.
ChunkRuns = Literal["auto", "on", "off"]


class SyncSettings(FrozenModel):
    """Contact sync: every accepted contact write, fanned out to these destinations."""

    destinations: dict[str, SyncDestinationSettings] = Field(
        default_factory=default_destinations,
        description="Destinations by name; empty: contact writes start no sync run.",
    )
    chunk_runs: ChunkRuns = Field(
        default="auto",
        description="How an import's changes become sync runs. `auto`: one run per written "
        "chunk for the destinations whose connector has a batch call for their action, one "
        "run per contact for the others; `on`: chunk runs for every destination (the server "
        "refuses to start if one has no batch call); `off`: one run per contact everywhere. "
        "See docs/contact-sync.md.",
    )
    coalesce: bool = Field(
        default=True,
        description="A change of a contact whose previous sync run has not been picked up "
        "yet replaces that run's snapshot instead of starting another (latest wins).",
    )

    @field_validator("chunk_runs", mode="before")
    @classmethod
    def _legacy_chunk_runs(cls, value: Any) -> Any:
        # It was a boolean before `auto`: configs that say true/false keep their meaning.
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return "on" if value.lower() == "true" else "off"
        return value
