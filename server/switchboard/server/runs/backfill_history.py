"""History backfill: the log's events since a time, replayed to one connector as its calls.

Each replayed event becomes a one-step run (event `contact.history`), queued a page of the
log at a time, so the dispatcher delivers them as it delivers live steps: batched where the
tool batches, under its rate limits and daily quota, on the bulk lane. The dispatcher's
per-contact ordering (on by default, `dispatch.per_contact_ordering`) hands a contact's
steps for one connector to the tool one at a time, in the order they were queued, which is
the log's order: a contact's history arrives in the order it was written.

Each page's runs and the log cursor after it commit in one transaction with the stored
position, so a backfill stopped part way (cancelled, or the server stopped) continues after
the last queued event and queues no event twice. The backfill reads up to the log's head as
it was when it started (`through`): later events are live traffic, not history.

An event is skipped, and counted, when its contact has been erased (the contact is gone
and its data key with it: the event's values are unreadable) or when it was written before
the log recorded values (`schema_version` 1: ids and field names only).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from google.protobuf.json_format import MessageToDict

from switchboard.server.common.timeutil import iso, to_us
from switchboard.server.rules.payloads import contact_payload
from switchboard.server.rules.plan import PlanStep
from switchboard.server.runs.one_step import queue_one_step_run
from switchboard.server.store.base import ReadTx, WriteTx
from switchboard.server.store.event_log import (
    CONTACT_CHANGES,
    ENVELOPE_VERSION,
    EventFilter,
    decode_rows,
)
from switchboard.v1 import campaigns_pb2, contacts_pb2, events_pb2, leads_pb2

HISTORY_EVENT = "contact.history"
ACTIVITY_TYPE = "lead.activity_recorded"
#: The calls an activity is sent as, first the connector has wins: a purchase as the tool's
#: purchase or conversion call, any other activity as its event-tracking call.
PURCHASE_ACTIONS = ("purchase", "purchases.record", "conversions.track")
TRACK_ACTIONS = ("events.track", "track")
_NAMESPACE = "switchboard.backfill"
_COLLECTION = "history_cursor"
StepStatus = campaigns_pb2.StepStatus
RunStatus = campaigns_pb2.RunStatus
_PURCHASE = leads_pb2.ActivityType.ACTIVITY_TYPE_PURCHASE


@dataclass(frozen=True, slots=True)
class HistoryCalls:
    """The steps `connector` receives history as; None where it has no such call."""

    connector: str
    contact: PlanStep | None
    purchase: PlanStep | None
    activity: PlanStep | None

    @classmethod
    def for_connector(
        cls, name: str, actions: Collection[str], contact_step: PlanStep
    ) -> HistoryCalls:
        """The connector's calls: `contact_step` (its sync step) when it has that action,
        the first purchase action it has (else its track action) for purchases, and its
        track action for other activities."""
        track = next((a for a in TRACK_ACTIONS if a in actions), None)
        purchase = next((a for a in PURCHASE_ACTIONS if a in actions), track)
        return cls(
            name,
            contact_step if contact_step.action in actions else None,
            PlanStep(name, purchase) if purchase else None,
            PlanStep(name, track) if track else None,
        )

    def types(self) -> tuple[str, ...]:
        """The event types replayed: those the connector has a call for."""
        out: tuple[str, ...] = CONTACT_CHANGES if self.contact else ()
        return out + ((ACTIVITY_TYPE,) if self.purchase else ())


@dataclass(frozen=True, slots=True)
class HistoryPosition:
    """Where a connector's history backfill stands.

    Events written from `since_us` through cursor `through` (the head when it started),
    of `segment`'s members ("" for everyone); read up to `cursor`, `queued` sent on and
    `skipped` not (erased or without values) of `total`.
    """

    since_us: int
    segment: str
    through: int
    cursor: int
    total: int
    queued: int = 0
    skipped: int = 0
    done: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryPosition:
        """Read a stored position."""
        return cls(
            int(data["since_us"]), str(data["segment"]), int(data["through"]),
            int(data["cursor"]), int(data["total"]), int(data["queued"]),
            int(data["skipped"]), bool(data["done"]),
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "since_us": self.since_us, "segment": self.segment, "through": self.through,
            "cursor": self.cursor, "total": self.total, "queued": self.queued,
            "skipped": self.skipped, "done": self.done,
        }


def history_position(tx: ReadTx, connector: str) -> HistoryPosition | None:
    """The stored position of `connector`'s history backfill, if one was started."""
    data = tx.state_get(_NAMESPACE, _COLLECTION, connector)
    return HistoryPosition.from_json(data) if data else None


def start_bounds(tx: ReadTx, since_us: int) -> tuple[int, int]:
    """The cursor to read after for events from `since_us` on, and the log's head now."""
    start = tx.event_seq_before(since_us) if since_us else 0
    return start, tx.last_event_seq()


def count_events(
    tx: ReadTx,
    after: int,
    through: int,
    types: tuple[str, ...],
    members: frozenset[str] | None,
    limit: int,
) -> tuple[int, int]:
    """Events of the selection in `(after, through]`, reading at most `limit` rows: how
    many, and the cursor read through (`through` when every row was read)."""
    rows = tx.event_rows(after, limit, EventFilter(types=types), through)
    found = sum(1 for r in rows if members is None or r.contact_id in members)
    last = rows[-1].seq if len(rows) == limit else through
    return found, last


def queue_history_page(
    tx: WriteTx,
    calls: HistoryCalls,
    fresh: HistoryPosition,
    members: frozenset[str] | None,
    limit: int,
    now: int,
    restart: bool = False,
) -> tuple[HistoryPosition, list[str]]:
    """Queue the runs of the next `limit` log rows of the backfill; return the new position
    (stored) and the runs started.

    As in `backfill.queue_page`, the position is read in the transaction that moves it, so
    two calls for one connector never queue the same events. `restart` (or no stored
    position) starts from `fresh`.
    """
    stored = None if restart else history_position(tx, calls.connector)
    at = stored or fresh
    read = tx.event_rows(at.cursor, limit, EventFilter(types=calls.types()), at.through)
    rows = [r for r in read if members is None or r.contact_id in members]
    live = _live_contacts(tx, {r.contact_id for r in rows})
    opened = decode_rows(tx, [r for r in rows if r.version == ENVELOPE_VERSION]).events
    by_seq = {e.cursor: e for e in opened}
    run_ids: list[str] = []
    skipped = not_taken = 0
    for row in rows:
        event = by_seq.get(row.seq)
        contact = live.get(row.contact_id)
        if event is None or event.redacted or contact is None:
            skipped += 1
            continue
        made = _call(calls, event, contact)
        if made is None:
            not_taken += 1  # an activity the connector has no call for: not history to it
            continue
        step, base = made
        run_ids.append(_queue_run(tx, step, base, event, now))
    cursor = read[-1].seq if len(read) == limit else at.through
    moved = replace(
        at,
        cursor=cursor,
        total=at.total - not_taken,
        queued=at.queued + len(run_ids),
        skipped=at.skipped + skipped,
        done=cursor >= at.through,
    )
    tx.state_put(_NAMESPACE, _COLLECTION, calls.connector, moved.to_json())
    return moved, run_ids


def _live_contacts(tx: ReadTx, ids: set[str]) -> dict[str, contacts_pb2.Contact]:
    """The contacts of `ids` that still exist (an erased one has no record)."""
    found: dict[str, contacts_pb2.Contact] = {}
    for contact_id in ids:
        contact = tx.contact_by_id(contact_id) if contact_id else None
        if contact is not None:
            found[contact_id] = contact
    return found


def _call(
    calls: HistoryCalls, event: events_pb2.Event, contact: contacts_pb2.Contact
) -> tuple[PlanStep, dict[str, Any]] | None:
    """The step and payload base `event` is sent as, or None when the connector has no call
    for it. A contact change carries the contact as it was after that change; an activity
    carries the contact as it is now (its consent is what delivery checks today)."""
    attributes: dict[str, Any] = {"cursor": event.cursor, "history_type": event.type,
                                  "occurred_at": _iso(event)}
    if event.HasField("contact_changed") and calls.contact is not None:
        then = event.contact_changed.contact
        attributes["version"] = then.version
        attributes["fields"] = list(event.contact_changed.fields)
        return calls.contact, {"event": HISTORY_EVENT, "contact": contact_payload(then),
                               "attributes": attributes}
    if not event.HasField("activity_recorded"):
        return None
    activity = event.activity_recorded.activity
    kind = leads_pb2.ActivityType.Name(activity.type).removeprefix("ACTIVITY_TYPE_").lower()
    step = calls.purchase if activity.type == _PURCHASE else calls.activity
    if step is None:
        return None
    details = MessageToDict(activity.attributes) if activity.HasField("attributes") else {}
    attributes.update(details)
    attributes["activity_id"] = event.activity_recorded.activity_id
    if activity.type == _PURCHASE:
        attributes.setdefault("amount", activity.value)
        attributes.setdefault("order_id", event.activity_recorded.activity_id)
    # The activity names the tracked event through the step's params (`name` for the
    # analytics and GA4 adapters, `event` for Segment): the base's `event` stays the
    # backfill's, which is what puts its steps on the bulk lane of the daily quota.
    named = replace(step, params={**step.params, "name": kind, "event": kind})
    base = {"event": HISTORY_EVENT, "contact": contact_payload(contact), "attributes": attributes}
    return named, base


def _iso(event: events_pb2.Event) -> str:
    return iso(to_us(event.occurred_at))


def _queue_run(
    tx: WriteTx, step: PlanStep, base: dict[str, Any], event: events_pb2.Event, now: int
) -> str:
    return queue_one_step_run(
        tx,
        HISTORY_EVENT,
        event.contact_id,
        step,
        lambda run_id: {**base, "run_id": run_id},
        now,
        # Clear values only (no one's data): which log event the run replays.
        attributes={"cursor": event.cursor, "type": event.type},
        details={"cursor": event.cursor},
    )
