"""Backfill: a connector's copy of every stored contact, through the contact-sync path.

A backfill queues one `contact.backfill` run per contact, a page at a time, each with the
single sync step of the connector's destination (its field mapping, mode and write-back),
so the dispatcher delivers them as it delivers contact changes: batched where the tool
batches, under its rate limits and daily quota, on the bulk lane. Each page's runs and the
position after it (the last contact's `(updated_us, id)`) commit in one transaction, so a
backfill stopped part way continues after the last queued contact and queues no one twice.

The position is kept in the store's key/value state under its own namespace (not a
connector's), keyed by the connector's name. Contacts are read as they are stored now:
an erased contact has no record and is never queued; one erased after it was queued has
its unsent step skipped (`skip_pending_backfill`). The run's start is logged as a
version-2 event with the caller's actor (the domain wraps the page in `acting_as`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from switchboard.server.common.timeutil import set_ts
from switchboard.server.config.sync import SyncDestinationSettings, SyncSettings
from switchboard.server.rules.payloads import contact_payload
from switchboard.server.rules.plan import PlanStep
from switchboard.server.rules.sync import StepSync
from switchboard.server.runs.backfill_history import HISTORY_EVENT
from switchboard.server.runs.one_step import queue_one_step_run
from switchboard.server.store.base import ReadTx, RunFilter, WriteTx
from switchboard.v1 import campaigns_pb2, contacts_pb2

BACKFILL_EVENT = "contact.backfill"
ERASED_SKIP = "the contact was erased before the backfill sent it"
_NAMESPACE = "switchboard.backfill"
_COLLECTION = "cursor"
StepStatus = campaigns_pb2.StepStatus
RunStatus = campaigns_pb2.RunStatus


@dataclass(frozen=True, slots=True)
class Position:
    """Where a connector's backfill stands: contacts changed since `since_us`, queued up to
    `after` (the last queued contact's `(updated_us, id)`), `queued` in all."""

    since_us: int
    after: tuple[int, str] | None
    queued: int
    done: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Position:
        """Read a stored position."""
        after = data.get("after")
        return cls(
            int(data["since_us"]),
            (int(after[0]), str(after[1])) if after else None,
            int(data["queued"]),
            bool(data["done"]),
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        after = list(self.after) if self.after else None
        return {"since_us": self.since_us, "after": after, "queued": self.queued,
                "done": self.done}


def destination_for(sync: SyncSettings, connector: str) -> SyncDestinationSettings:
    """The connector's sync destination (its mapping and mode), or plain `contacts.upsert`
    of every field when it is not one."""
    for dest in sync.destinations.values():
        if dest.connector == connector and "changed" in dest.events:
            return dest
    return SyncDestinationSettings(connector=connector, events=["changed"])


def backfill_step(dest: SyncDestinationSettings) -> PlanStep:
    """The one step of a backfill run: the destination's sync step."""
    params = {**dest.params, "mode": dest.mode}
    return PlanStep(dest.connector, dest.action, params, sync=StepSync.from_settings(dest))


def position(tx: ReadTx, connector: str) -> Position | None:
    """The stored position of `connector`'s backfill, if one was started."""
    data = tx.state_get(_NAMESPACE, _COLLECTION, connector)
    return Position.from_json(data) if data else None


def _base(contact: contacts_pb2.Contact, run_id: str) -> dict[str, Any]:
    return {
        "event": BACKFILL_EVENT,
        "run_id": run_id,
        "contact": contact_payload(contact),
        "attributes": {"version": contact.version},
    }


def queue_page(
    tx: WriteTx, step: PlanStep, since_us: int, limit: int, now: int, restart: bool = False
) -> tuple[Position, list[str]]:
    """Queue the next `limit` contacts of the connector's backfill; return the new position
    (stored) and the runs started.

    The position is read here, in the same transaction that moves it, not passed in: a call
    whose client went away may still be committing its last page when the next call starts,
    and neither may queue the same contacts. `restart` (or no stored position) starts from
    the first contact changed since `since_us`.
    """
    stored = None if restart else position(tx, step.connector)
    start = stored or Position(since_us, None, 0, False)
    contacts = tx.list_contacts("", start.since_us, start.after, limit)
    run_ids: list[str] = []
    for contact in contacts:
        run_ids.append(
            queue_one_step_run(
                tx,
                BACKFILL_EVENT,
                contact.id,
                step,
                functools.partial(_base, contact),
                now,
            )
        )
    after = start.after
    if contacts:
        last = contacts[-1]
        after = (last.updated_at.seconds * 1_000_000 + last.updated_at.nanos // 1000, last.id)
    moved = Position(start.since_us, after, start.queued + len(contacts), len(contacts) < limit)
    tx.state_put(_NAMESPACE, _COLLECTION, step.connector, moved.to_json())
    return moved, run_ids


def skip_pending_backfill(tx: WriteTx, contact_id: str, now: int) -> None:
    """Skip the erased contact's backfill steps (current state and history) not yet sent.

    Steps waiting for a retry, or held back by a rate limit or the daily quota, are skipped
    too: their plan now holds only the contact's id, and a call made from that would reach
    the tool as an empty record. A step already on its way is not recalled; when it comes
    back, its outcome is dropped (`record` ignores a step that has ended).
    """
    for event in (BACKFILL_EVENT, HISTORY_EVENT):
        _skip_pending(tx, contact_id, event, now)


def _skip_pending(tx: WriteTx, contact_id: str, event: str, now: int) -> None:
    pending = RunStatus.RUN_STATUS_PENDING
    flt = RunFilter(contact_id=contact_id, event=event, status=pending)
    for run in tx.list_runs(flt, None, 1000):
        item = tx.outbox_item(run.id, 0)
        if item is None:
            continue
        tx.finish_outbox(item.id)
        step = run.steps[0]
        step.status = StepStatus.STEP_STATUS_SKIPPED
        step.skip_reason = ERASED_SKIP
        set_ts(step.updated_at, now)
        run.status = RunStatus.RUN_STATUS_SUCCEEDED
        set_ts(run.updated_at, now)
        set_ts(run.finished_at, now)
        tx.put_run(run)
