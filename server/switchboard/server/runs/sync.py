"""Contact sync runs: a contact change fanned out to the `sync` destinations, in the writing
transaction.

A change starts a `contact.changed` run with one step per destination, in the order they
are configured. Rapid changes coalesce: when the contact's newest `contact.changed` run is
still PENDING and its first step was never claimed (its outbox row has no attempt), the new
snapshot replaces that run's plan instead of queuing another run. The row keeps its place in
the outbox, so the contact's deliveries stay in order, and as no tool has seen the row's
idempotency key yet, reusing it for the newer snapshot is safe. Once a step was claimed, its
run is left alone and the change starts a new run behind it.

Erasure joins the `contact.erased` trigger: the destinations with `erased` in their events
are added as steps after the trigger's own, unless the trigger already calls that
connector's erase action (sent once, not twice). Unclaimed `contact.changed` steps of the
erased contact are skipped rather than sent with what erasure left of the person.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import set_ts
from switchboard.server.config.flow import StepSettings, TriggerSettings
from switchboard.server.config.sync import SyncDestinationSettings, SyncSettings
from switchboard.server.connectors.base import Connector
from switchboard.server.rules.payloads import contact_payload, struct_dict
from switchboard.server.rules.plan import Plan, PlanStep
from switchboard.server.rules.sync import StepSync
from switchboard.server.runs.outcome import queue_step
from switchboard.server.store.base import RunFilter, WriteTx
from switchboard.v1 import campaigns_pb2, contacts_pb2

CHANGED_EVENT = "contact.changed"
ERASED_EVENT = "contact.erased"
ERASED_SKIP = "the contact was erased before this change was sent"
RunStatus = campaigns_pb2.RunStatus
StepStatus = campaigns_pb2.StepStatus


def change_steps(sync: SyncSettings, contact: contacts_pb2.Contact) -> tuple[PlanStep, ...]:
    """The steps a change of `contact` makes: one per destination that takes it."""
    steps = []
    for dest in sync.destinations.values():
        if "changed" not in dest.events:
            continue
        if dest.mode == "update_only" and not contact.external_ids.get(dest.connector):
            continue  # the tool does not know this person yet
        params = {**dest.params, "mode": dest.mode, "version": contact.version}
        steps.append(
            PlanStep(dest.connector, dest.action, params, sync=StepSync.from_settings(dest))
        )
    return tuple(steps)


def sync_change(
    tx: WriteTx,
    sync: SyncSettings,
    contact: contacts_pb2.Contact,
    fields: list[str],
    now: int,
    *,
    created: bool,
    traceparent: str = "",
) -> str | None:
    """Start (or coalesce into) the `contact.changed` run for this accepted write.

    Returns the event when a new run was started (for the dispatcher's count), else None.
    """
    steps = change_steps(sync, contact)
    if not steps:
        return None
    # A contact created by this write has no runs yet: no lookup.
    if sync.coalesce and not created and _coalesce(tx, contact, steps, fields, now):
        return None
    attributes = {"version": contact.version, "fields": list(fields), "changes": 1}
    _start(tx, contact, steps, attributes, now, traceparent)
    return CHANGED_EVENT


def _start(
    tx: WriteTx,
    contact: contacts_pb2.Contact,
    steps: tuple[PlanStep, ...],
    attributes: dict[str, Any],
    now: int,
    traceparent: str,
) -> None:
    run = campaigns_pb2.Run(
        id=new_id("r"),
        event=CHANGED_EVENT,
        contact_id=contact.id,
        status=RunStatus.RUN_STATUS_PENDING,
    )
    run.attributes.update(attributes)
    set_ts(run.created_at, now)
    set_ts(run.updated_at, now)
    for index, step in enumerate(steps):
        added = run.steps.add(
            index=index,
            connector=step.connector,
            action=step.action,
            status=StepStatus.STEP_STATUS_PENDING,
        )
        set_ts(added.updated_at, now)
    plan = Plan(_base(run.id, contact, attributes), steps)
    tx.put_run(run, plan, traceparent)
    queue_step(tx, run, plan, 0, now)
    body = {"event": CHANGED_EVENT, "contact_id": contact.id}
    tx.append_event("run.started", run.id, json.dumps(body).encode(), now)


def _base(run_id: str, contact: contacts_pb2.Contact, attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": CHANGED_EVENT,
        "run_id": run_id,
        "contact": contact_payload(contact),
        "attributes": attributes,
    }


def _coalesce(
    tx: WriteTx,
    contact: contacts_pb2.Contact,
    steps: tuple[PlanStep, ...],
    fields: list[str],
    now: int,
) -> bool:
    """Fold this change into the contact's newest unclaimed sync run, if there is one."""
    flt = RunFilter(contact_id=contact.id, event=CHANGED_EVENT, status=RunStatus.RUN_STATUS_PENDING)
    pending = tx.list_runs(flt, None, 1)
    if not pending:
        return False
    run = pending[0]
    if [(s.connector, s.action) for s in run.steps] != [(s.connector, s.action) for s in steps]:
        return False  # another set of destinations (an update_only tool learnt the person)
    item = tx.outbox_item(run.id, 0)
    if item is None or item.attempts:
        return False  # claimed: a tool may have seen this step's key; queue behind it
    before = struct_dict(run.attributes)
    seen = [str(f) for f in before.get("fields") or []]
    attributes: dict[str, Any] = {
        "version": contact.version,
        "fields": seen + [f for f in fields if f not in seen],
        "changes": int(before.get("changes", 1)) + 1,
    }
    run.attributes.Clear()
    run.attributes.update(attributes)
    set_ts(run.updated_at, now)
    tx.update_plan(run.id, Plan(_base(run.id, contact, attributes), steps))
    tx.put_run(run)
    body = {"run_id": run.id, "version": contact.version}
    tx.append_event("run.coalesced", run.id, json.dumps(body).encode(), now)
    return True


def erasure_trigger(trigger: TriggerSettings | None, sync: SyncSettings) -> TriggerSettings | None:
    """The `contact.erased` steps: the trigger's, then each destination's erase action
    that the trigger does not already call. None when nothing is to be told."""
    steps = list(trigger.steps) if trigger else []
    calls = {(s.connector, s.action) for s in steps}
    for dest in sync.destinations.values():
        if "erased" not in dest.events or dest.erase_action is None:
            continue
        if (dest.connector, dest.erase_action) in calls:
            continue
        calls.add((dest.connector, dest.erase_action))
        steps.append(StepSettings(connector=dest.connector, action=dest.erase_action))
    if not steps:
        return None
    description = trigger.description if trigger else "Erasure sent to the sync destinations."
    return TriggerSettings(description=description, steps=steps)


def skip_pending_changes(tx: WriteTx, contact_id: str, now: int) -> None:
    """Skip the erased contact's `contact.changed` steps that no worker has claimed."""
    for status in (RunStatus.RUN_STATUS_PENDING, RunStatus.RUN_STATUS_RUNNING):
        flt = RunFilter(contact_id=contact_id, event=CHANGED_EVENT, status=status)
        for run in tx.list_runs(flt, None, 1000):
            _skip_rest(tx, run, now)


def _skip_rest(tx: WriteTx, run: campaigns_pb2.Run, now: int) -> None:
    waiting = (StepStatus.STEP_STATUS_PENDING,)
    current = next((s.index for s in run.steps if s.status in waiting), None)
    if current is None:
        return
    item = tx.outbox_item(run.id, current)
    if item is None or item.attempts:
        return  # in flight or retrying: it ends on its own
    tx.finish_outbox(item.id)
    for step in run.steps[current:]:
        step.status = StepStatus.STEP_STATUS_SKIPPED
        step.skip_reason = ERASED_SKIP
        set_ts(step.updated_at, now)
    failed = any(s.status == StepStatus.STEP_STATUS_FAILED for s in run.steps)
    run.status = RunStatus.RUN_STATUS_FAILED if failed else RunStatus.RUN_STATUS_SUCCEEDED
    set_ts(run.updated_at, now)
    set_ts(run.finished_at, now)
    tx.put_run(run)


def check_destinations(sync: SyncSettings, registry: Mapping[str, Connector]) -> None:
    """Check that every destination's connector is configured and has its actions.

    Raises:
        ValueError: naming the destination, the connector and the action.
    """
    for name, dest in sync.destinations.items():
        connector = registry.get(dest.connector)
        where = f"sync destination {name!r}: connector {dest.connector!r}"
        if connector is None:
            raise ValueError(f"{where} is not configured")
        for action in _actions(dest):
            if action not in connector.actions:
                known = ", ".join(sorted(connector.actions))
                raise ValueError(f"{where} has no action {action!r} (its actions: {known})")


def _actions(dest: SyncDestinationSettings) -> list[str]:
    actions = [dest.action] if "changed" in dest.events else []
    if "erased" in dest.events and dest.erase_action:
        actions.append(dest.erase_action)
    return actions
