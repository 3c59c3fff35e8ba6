"""Replaying the event log into fresh read models, in memory (`RebuildReadModels`).

What is rebuilt from the log: each contact (the full record is sealed in every
`contact.*` change) with its lists, its activities (time, type and value clear, attributes
sealed), its lead (every stored score is sealed in the event that stored it:
`lead.activity_recorded`, `lead.status_changed`, `lead.scored`), and the segments read
model derived from them. A live contact whose lead was stored before scores were logged
(no lead in its events) keeps its current lead row; those are counted as `leads_kept`.

Erased people: their data key is gone, so their events open as clear parts only. A
redacted contact change never creates a contact, and `contact.erased` drops everything
built for that id, so a replay never resurrects anyone.

Schema-1 events (JSON of ids and field names, written before values were recorded) cannot
rebuild a contact. A contact with any schema-1 event in its history keeps its current row
and activities as they are; they are counted as `legacy_kept`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchboard.server.rules.segment_facts import (
    contact_columns,
    day_of,
    lead_columns,
    window_columns,
)
from switchboard.server.store.event_log import ENVELOPE_VERSION, EventRow
from switchboard.v1 import contacts_pb2, events_pb2, leads_pb2

ERASED = "contact.erased"
# As in store/facts.py (which imports store/base.py, which imports this module).
PURCHASE = "purchase"
ADD_TO_CART = "add_to_cart"
_NO_LEAD = {"lead_score": 0, "lead_grade": "", "lead_status": "NEW"}
_KINDS = {
    value: name.removeprefix("ACTIVITY_TYPE_").lower()
    for name, value in leads_pb2.ActivityType.items()
}


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """One row of `activities` as the replay rebuilt it."""

    id: str
    contact_id: str
    type: str
    occurred_us: int
    value: float
    attributes: bytes


@dataclass(slots=True)
class ReadModels:
    """The read models built so far, and what the replay counted."""

    contacts: dict[str, contacts_pb2.Contact] = field(default_factory=dict)
    # Per contact, in log order: the live path sums them in that order too.
    activities: dict[str, list[ActivityRecord]] = field(default_factory=dict)
    # The last stored lead of each contact, as logged.
    leads: dict[str, leads_pb2.Lead] = field(default_factory=dict)
    legacy: set[str] = field(default_factory=set)
    erased: set[str] = field(default_factory=set)
    events_read: int = 0
    redacted: int = 0
    cursor: int = 0
    leads_kept: int = 0

    def apply(self, row: EventRow, event: events_pb2.Event) -> None:
        """Fold one decoded event (`event_log.decode_rows`) into the models."""
        self.events_read += 1
        self.cursor = row.seq
        if event.redacted:
            self.redacted += 1
        if row.version != ENVELOPE_VERSION:
            self._legacy(row, event)
            return
        contact_id = row.contact_id
        if row.type == ERASED:
            self._erase(contact_id)
            return
        kind = event.WhichOneof("values")
        if kind == "contact_changed":
            contact = event.contact_changed.contact
            # Redacted or cleared: only the id and version are clear, not a contact.
            if not event.redacted and contact.email and contact_id not in self.erased:
                self.contacts[contact_id] = contact
            return
        if contact_id in self.erased:
            return
        if kind == "lead_status_changed" or kind == "lead_scored":
            values = getattr(event, kind)
            if values.HasField("lead"):
                self.leads[contact_id] = values.lead
        elif kind == "activity_recorded":
            recorded = event.activity_recorded
            if recorded.HasField("lead"):
                self.leads[contact_id] = recorded.lead
            act = recorded.activity
            self.activities.setdefault(contact_id, []).append(
                ActivityRecord(
                    recorded.activity_id,
                    contact_id,
                    _KINDS.get(act.type, "unspecified"),
                    act.occurred_at.seconds * 1_000_000 + act.occurred_at.nanos // 1000,
                    act.value,
                    act.attributes.SerializeToString() if act.HasField("attributes") else b"",
                )
            )

    def _legacy(self, row: EventRow, event: events_pb2.Event) -> None:
        contact_id = event.contact_id  # `legacy_event` found it in the row or its body
        if row.type == ERASED:
            self._erase(contact_id)
        elif row.type.startswith(("contact.", "lead.")) and contact_id:
            self.legacy.add(contact_id)

    def _erase(self, contact_id: str) -> None:
        self.erased.add(contact_id)
        self.contacts.pop(contact_id, None)
        self.activities.pop(contact_id, None)
        self.leads.pop(contact_id, None)
        self.legacy.discard(contact_id)

    def keep_current(
        self,
        contacts: Sequence[contacts_pb2.Contact],
        activities: Sequence[ActivityRecord],
    ) -> None:
        """Take the current rows of the schema-1 contacts (`legacy`) as they are."""
        for contact in contacts:
            self.contacts[contact.id] = contact
            self.activities.pop(contact.id, None)
        for act in activities:
            self.activities.setdefault(act.contact_id, []).append(act)

    def unlogged_leads(self) -> list[str]:
        """Live contacts whose current lead row the log cannot rebuild: schema-1 history,
        or no stored score in their events (a lead stored before scores were logged)."""
        return sorted(
            cid for cid in self.contacts if cid in self.legacy or cid not in self.leads
        )

    def keep_current_leads(self, leads: Sequence[leads_pb2.Lead]) -> None:
        """Take the current lead rows of `unlogged_leads` as they are."""
        for lead in leads:
            self.leads[lead.contact_id] = lead
        self.leads_kept = len(leads)

    def live_leads(self) -> list[leads_pb2.Lead]:
        """Leads of contacts that exist in the rebuilt model, by contact id."""
        return [self.leads[cid] for cid in sorted(self.contacts) if cid in self.leads]

    def live_activities(self) -> list[ActivityRecord]:
        """Activities of contacts that exist in the rebuilt model."""
        return [a for cid, acts in self.activities.items() if cid in self.contacts for a in acts]


def facts_row(
    contact: contacts_pb2.Contact,
    lead: leads_pb2.Lead | None,
    activities: Sequence[ActivityRecord],
    today: int,
) -> tuple[dict[str, Any], dict[int, tuple[int, float]]]:
    """One contact's `segment_facts` columns and purchase buckets (day -> count, amount),
    summed in log order as the live path sums them."""
    cols: dict[str, Any] = {"contact_id": contact.id, **contact_columns(contact)}
    cols.update(lead_columns(lead) if lead is not None else _NO_LEAD)
    last = last_purchase = last_cart = count = 0
    amount = 0.0
    days: dict[int, tuple[int, float]] = {}
    for act in activities:
        last = max(last, act.occurred_us)
        if act.type == PURCHASE:
            last_purchase = max(last_purchase, act.occurred_us)
            count, amount = count + 1, amount + act.value
            day = day_of(act.occurred_us)
            n, total = days.get(day, (0, 0.0))
            days[day] = (n + 1, total + act.value)
        elif act.type == ADD_TO_CART:
            last_cart = max(last_cart, act.occurred_us)
    cols.update(
        last_activity_us=last,
        last_purchase_us=last_purchase,
        last_cart_us=last_cart,
        cart_without_order=int(last_cart > last_purchase),
        purchases_total=count,
        amount_total=amount,
        average_basket=amount / count if count else 0.0,
    )
    cols.update(window_columns(((d, n, a) for d, (n, a) in sorted(days.items())), today))
    return cols, days


class RebuildWrites(Protocol):
    """The rebuild's queries of a write transaction (mixed into `WriteTx`)."""

    def current_read_models(
        self, contact_ids: Sequence[str]
    ) -> tuple[list[contacts_pb2.Contact], list[ActivityRecord]]:
        """The current contacts and activities of `contact_ids` (kept by a rebuild)."""
        ...

    def current_leads(self, contact_ids: Sequence[str]) -> list[leads_pb2.Lead]:
        """The current lead rows of `contact_ids` (kept by a rebuild)."""
        ...

    def replace_read_models(self, models: ReadModels, today: int) -> None:
        """Replace contacts, lists, activities, leads and the segments model with `models`."""
        ...
