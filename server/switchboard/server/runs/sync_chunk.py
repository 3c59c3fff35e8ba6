"""Chunk sync runs: an import chunk's changes fanned out as one run per destination set.

`ImportContacts` starts one `contact.changed` run per written chunk and set of the
destinations `sync.chunk_runs` chunks (by default those with a batch call; see
`SyncFanout`) instead of one per contact. The run's plan holds every
contact's snapshot under `items` (keyed by contact id, in import order), its steps are the
destinations' as for a single contact, and each step is one outbox row. `run_contacts`
lists the contacts it covers, so `ListRuns(contact_id=...)` still shows a contact's sync.

Each step keeps its items' outcomes in its result, under `items` (see `chunk_outcome.py`):
a partial failure retries only the failed contacts, and a contact that fails for good is
dead-lettered on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import set_ts
from switchboard.server.rules.payloads import contact_payload
from switchboard.server.rules.plan import Plan, PlanStep
from switchboard.server.runs.outcome import queue_step
from switchboard.server.store.base import WriteTx
from switchboard.server.store.event_log import actor_label, append_details, current_actor
from switchboard.v1 import campaigns_pb2, contacts_pb2

CHANGED_EVENT = "contact.changed"
ITEMS = "items"  # the plan base's key (and the step result's) that makes a run a chunk run


def is_chunk(plan: Plan) -> bool:
    """Whether `plan` is a chunk run's (its base holds `items`, not one `contact`)."""
    return ITEMS in plan.base


def item_plan(plan: Plan, contact_id: str) -> Plan:
    """The single-contact plan of one item: the payload a per-contact run would send."""
    item: Mapping[str, Any] = plan.base[ITEMS][contact_id]
    base = {
        "event": plan.base.get("event", CHANGED_EVENT),
        "run_id": plan.base.get("run_id", ""),
        "contact": item["contact"],
        "attributes": item["attributes"],
    }
    return Plan(base, plan.steps)


def item_entry(contact: contacts_pb2.Contact, fields: list[str]) -> dict[str, Any]:
    """One contact's entry in a chunk plan's `items`."""
    attributes = {"version": contact.version, "fields": list(fields), "changes": 1}
    return {"contact": contact_payload(contact), "attributes": attributes}


def start_chunk_run(
    tx: WriteTx,
    template: campaigns_pb2.Run,
    steps: tuple[PlanStep, ...],
    items: dict[str, dict[str, Any]],
    now: int,
    traceparent: str = "",
) -> campaigns_pb2.Run:
    """Write one chunk run covering `items` (contact id -> entry), its index rows and its
    first step's outbox row, in the caller's transaction."""
    run = campaigns_pb2.Run()
    run.CopyFrom(template)
    run.id = new_id("r")
    run.started_by = actor_label(current_actor())
    attributes = Struct()
    attributes.update({"contacts": len(items), "chunk": True})
    run.attributes.CopyFrom(attributes)
    set_ts(run.created_at, now)
    set_ts(run.updated_at, now)
    for step in run.steps:
        step.updated_at.CopyFrom(run.created_at)
    base = {"event": CHANGED_EVENT, "run_id": run.id, ITEMS: items}
    plan = Plan(base, steps)
    tx.put_run(run, plan, traceparent)
    tx.add_run_contacts(run.id, list(items))
    queue_step(tx, run, plan, 0, now)
    started = {"event": CHANGED_EVENT, "contacts": len(items)}
    append_details(tx, "run.started", run.id, now, started)
    return run


def extend_chunk(tx: WriteTx, run_id: str, items: dict[str, dict[str, Any]], now: int) -> bool:
    """Add `items` (contact id -> entry) to the chunk run `run_id`, started by an earlier
    part of the same import chunk, if no worker claimed its first step yet. False, with
    nothing written, when it was claimed (or is gone): the caller starts a run of its own."""
    first = tx.outbox_item(run_id, 0)
    if first is None or first.attempts or not is_chunk(first.plan):
        return False
    run = tx.run(run_id)
    if run is None or run.status != campaigns_pb2.RunStatus.RUN_STATUS_PENDING:
        return False
    merged = {**first.plan.base[ITEMS], **items}
    tx.update_plan(run_id, Plan({**first.plan.base, ITEMS: merged}, first.plan.steps))
    tx.add_run_contacts(run_id, list(items))
    attributes = Struct()
    attributes.update({"contacts": len(merged), "chunk": True})
    run.attributes.CopyFrom(attributes)
    set_ts(run.updated_at, now)
    tx.put_run(run)
    return True


def fold_into_chunk(
    tx: WriteTx, run_id: str, changes: list[tuple[contacts_pb2.Contact, list[str]]]
) -> list[contacts_pb2.Contact]:
    """Replace these contacts' snapshots in the unclaimed chunk run `run_id` (latest wins),
    reading and writing its plan once for all of them. Returns the contacts folded in (a
    contact the run does not hold is left out)."""
    plan = tx.run_plan(run_id)
    if plan is None or not is_chunk(plan):
        return []
    items = dict(plan.base[ITEMS])
    folded: list[contacts_pb2.Contact] = []
    for contact, fields in changes:
        before = items.get(contact.id)
        if before is None:
            continue
        seen = [str(f) for f in before["attributes"].get("fields") or []]
        entry = item_entry(contact, seen + [f for f in fields if f not in seen])
        entry["attributes"]["changes"] = int(before["attributes"].get("changes", 1)) + 1
        items[contact.id] = entry
        folded.append(contact)
    if folded:
        tx.update_plan(run_id, Plan({**plan.base, ITEMS: items}, plan.steps))
    return folded
