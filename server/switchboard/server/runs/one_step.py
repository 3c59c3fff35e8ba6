"""A pending run of one step for one contact, queued and logged: what a backfill starts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import set_ts
from switchboard.server.rules.plan import Plan, PlanStep
from switchboard.server.runs.outcome import queue_step
from switchboard.server.store.base import WriteTx
from switchboard.server.store.event_log import actor_label, append_details, current_actor
from switchboard.v1 import campaigns_pb2

RunStatus = campaigns_pb2.RunStatus
StepStatus = campaigns_pb2.StepStatus


def queue_one_step_run(
    tx: WriteTx,
    event: str,
    contact_id: str,
    step: PlanStep,
    base: Callable[[str], dict[str, Any]],
    now: int,
    *,
    attributes: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> str:
    """Start a run of `step` for `contact_id` and return its id.

    `base(run_id)` gives the plan's base payload; `attributes` are kept on the run (clear
    values only: they are not scrubbed like the plan); `details` go into `run.started`
    beside the event and contact id. The run names the acting caller as who started it.
    """
    run = campaigns_pb2.Run(
        id=new_id("r"),
        event=event,
        contact_id=contact_id,
        status=RunStatus.RUN_STATUS_PENDING,
        started_by=actor_label(current_actor()),
    )
    if attributes:
        run.attributes.update(dict(attributes))
    set_ts(run.created_at, now)
    set_ts(run.updated_at, now)
    added = run.steps.add(
        index=0, connector=step.connector, action=step.action, status=StepStatus.STEP_STATUS_PENDING
    )
    set_ts(added.updated_at, now)
    plan = Plan(base(run.id), (step,))
    tx.put_run(run, plan)
    queue_step(tx, run, plan, 0, now)
    body = {"event": event, "contact_id": contact_id, **(details or {})}
    append_details(tx, "run.started", run.id, now, body, contact_id)
    return run.id
