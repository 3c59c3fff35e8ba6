"""Starting a run: its record, its plan and its first outbox row, in the caller's transaction."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import set_ts
from switchboard.server.config.flow import TriggerSettings
from switchboard.server.rules.payloads import contact_payload, struct_dict
from switchboard.server.rules.plan import Plan, PlanStep
from switchboard.server.rules.variants import assign, variant_params
from switchboard.server.runs.outcome import queue_step
from switchboard.server.store.base import WriteTx
from switchboard.server.store.event_log import (
    actor_label,
    append_details,
    current_actor,
    run_actor,
)
from switchboard.v1 import campaigns_pb2, contacts_pb2


def start_run(
    tx: WriteTx,
    event: str,
    trigger: TriggerSettings,
    contact: contacts_pb2.Contact,
    attributes: Struct,
    now: int,
    lead: dict[str, Any] | None = None,
    traceparent: str = "",
    variant: str = "",
    started_by: str | None = None,
) -> campaigns_pb2.Run:
    """Create a PENDING run for `event` and queue its first step.

    `traceparent` (from `telemetry.current_traceparent()`, taken before the write: the
    transaction may run in another context) puts the run's deliveries in the caller's trace.
    A trigger with variants runs `variant` (a configured one, checked by the caller), or
    else the contact's own; the run records it and its steps take that variant's params.
    `started_by`: who the run is for when it is started outside that caller's request
    (a segment campaign's runs); default: the current actor.
    """
    run = campaigns_pb2.Run(
        id=new_id("r"),
        event=event,
        contact_id=contact.id,
        status=campaigns_pb2.RunStatus.RUN_STATUS_PENDING,
        started_by=actor_label(current_actor()) if started_by is None else started_by,
    )
    if trigger.variants:
        run.variant = variant or assign(event, contact.id, _weights(trigger))
    run.attributes.CopyFrom(attributes)
    set_ts(run.created_at, now)
    set_ts(run.updated_at, now)
    for index, step in enumerate(trigger.steps):
        added = run.steps.add(
            index=index,
            connector=step.connector,
            action=step.action or ("wait" if step.wait else ""),
            status=campaigns_pb2.StepStatus.STEP_STATUS_PENDING,
        )
        set_ts(added.updated_at, now)
    # The plan freezes the steps as configured now, so a config change or restart cannot
    # alter a run that is already under way.
    base: dict[str, Any] = {
        "event": event,
        "run_id": run.id,
        "contact": contact_payload(contact),
        "attributes": struct_dict(attributes),
    }
    if lead is not None:
        base["lead"] = lead
    steps = tuple(PlanStep.from_settings(s) for s in trigger.steps)
    if run.variant:
        base["variant"] = run.variant
        steps = tuple(
            replace(step, params=variant_params(trigger, run.variant, index))
            for index, step in enumerate(steps)
        )
    plan = Plan(base, steps)
    tx.put_run(run, plan, traceparent)
    if run.variant:
        tx.put_run_variant(run)
    queue_step(tx, run, plan, 0, now)
    if run.steps[0].status != campaigns_pb2.StepStatus.STEP_STATUS_PENDING:
        tx.put_run(run)  # a wait parked, or a condition skipped steps
    details: dict[str, Any] = {"event": event, "contact_id": contact.id}
    if run.variant:
        details["variant"] = run.variant
    actor = run_actor(run.started_by, run.id)  # when no caller is acting
    append_details(tx, "run.started", run.id, now, details, contact.id, actor)
    return run


def _weights(trigger: TriggerSettings) -> dict[str, int]:
    return {name: v.weight for name, v in trigger.variants.items()}
