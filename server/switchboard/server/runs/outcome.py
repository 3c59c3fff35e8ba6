"""Recording a delivery outcome on its run, inside one write transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import set_ts
from switchboard.server.rules.plan import Plan
from switchboard.server.runs.conditions import condition_skip
from switchboard.server.runs.sealed import drop_sealed
from switchboard.server.runs.waits import start_wait, take_branch
from switchboard.server.runs.write_back import write_back
from switchboard.server.store import event_values
from switchboard.server.store.base import DeadLetter, OutboxItem, WriteTx
from switchboard.server.store.event_log import append, append_details, run_actor
from switchboard.v1 import campaigns_pb2

StepStatus = campaigns_pb2.StepStatus
RunStatus = campaigns_pb2.RunStatus
_DONE = (
    StepStatus.STEP_STATUS_SUCCEEDED,
    StepStatus.STEP_STATUS_FALLBACK,
    StepStatus.STEP_STATUS_FAILED,
    StepStatus.STEP_STATUS_SKIPPED,
)
TERMINAL_RUN = (RunStatus.RUN_STATUS_SUCCEEDED, RunStatus.RUN_STATUS_FAILED)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery attempt came to."""

    status: int  # a StepStatus; RETRYING means "try again at retry_at_us"
    attempts: int
    result: dict[str, Any] | None = None
    error: str = ""
    retry_at_us: int = 0
    dead_reason: str = ""  # set on FAILED: "retries_exhausted" or "permanent_error"
    branch: str | None = None  # set when a wait step ends: the branch to take
    skip_reason: str = ""  # set on SKIPPED: why the step was not sent


def step_key(run_id: str, index: int) -> str:
    """The idempotency key a step carries on every attempt, across restarts."""
    return f"{run_id}:{index}"


def record(tx: WriteTx, item: OutboxItem, outcome: Outcome, now: int) -> campaigns_pb2.Run | None:
    """Apply `outcome` to the run, advance the outbox, and return the updated run.

    Returns None (and changes nothing) when the step already finished: a duplicate
    delivery after a lease ran out must not overwrite the first result.
    """
    run = tx.run(item.run_id)
    if run is None or run.steps[item.step_index].status in _DONE:
        tx.finish_outbox(item.id)
        return None
    step = run.steps[item.step_index]
    step.attempts = outcome.attempts
    step.error = outcome.error
    step.skip_reason = outcome.skip_reason
    set_ts(step.updated_at, now)
    step.status = outcome.status  # type: ignore[assignment]  # an int from StepStatus
    if outcome.status == StepStatus.STEP_STATUS_RETRYING:
        tx.retry_outbox(item.id, outcome.attempts, outcome.retry_at_us)
    else:
        if outcome.result is not None:
            step.result.CopyFrom(_struct(outcome.result))
            sync = item.plan.steps[item.step_index].sync
            if sync is not None and outcome.status == StepStatus.STEP_STATUS_SUCCEEDED:
                write_back(tx, run.contact_id, sync, outcome.result, run.id, now)
        tx.finish_outbox(item.id)
        if outcome.status == StepStatus.STEP_STATUS_FAILED:
            _dead_letter(tx, run, item, outcome, now)
        plan = item.plan
        if outcome.branch is not None:
            plan = take_branch(tx, run, plan, item.step_index, outcome.branch, now)
        _advance(tx, run, plan, item, now)
        if run.status in TERMINAL_RUN:
            drop_sealed(tx, run.id, plan)  # an erasure run's sealed email goes with it
    set_ts(run.updated_at, now)
    tx.put_run(run)
    # The step's outcome in the person's history: the error text and the tool's answer
    # (e.g. the offer shown) are sealed with their key.
    clear, personal = event_values.run_step(
        run.event,
        item.step_index,
        step.connector,
        step.action,
        step.status,
        step.attempts,
        step.skip_reason,
        step.error,
        step.result if step.HasField("result") else None,
        variant=run.variant,
    )
    actor = run_actor(run.started_by, run.id)
    append(
        tx,
        "run.step",
        run.id,
        now,
        contact_id=run.contact_id,
        clear=clear,
        personal=personal,
        otherwise=actor,
    )
    return run


def _dead_letter(
    tx: WriteTx, run: campaigns_pb2.Run, item: OutboxItem, outcome: Outcome, now: int
) -> None:
    step = item.plan.steps[item.step_index]
    letter = DeadLetter(
        id=new_id("d"),
        run_id=run.id,
        step_index=item.step_index,
        connector=step.connector,
        action=step.action,
        contact_id=run.contact_id,
        idempotency_key=item.idempotency_key,
        reason=outcome.dead_reason or "permanent_error",
        attempts=outcome.attempts,
        last_error=outcome.error,
        dead_us=now,
    )
    tx.add_dead_letter(letter)
    body = {"id": letter.id, "step": item.step_index, "reason": letter.reason}
    actor = run_actor(run.started_by, run.id)
    append_details(tx, "run.step_dead_lettered", run.id, now, body, run.contact_id, actor)


def queue_step(tx: WriteTx, run: campaigns_pb2.Run, plan: Plan, index: int, now: int) -> None:
    """Put step `index` in the outbox (a wait step: park it until its event or timeout).

    A step whose `when` condition is false is SKIPPED here, with its reason, and the next
    one is queued in its place; when none is left the run ends.
    """
    while (reason := condition_skip(tx, run, plan, index)) is not None:
        step = run.steps[index]
        step.status = StepStatus.STEP_STATUS_SKIPPED
        step.skip_reason = reason
        set_ts(step.updated_at, now)
        clear, _ = event_values.run_step(
            run.event,
            index,
            step.connector,
            step.action,
            step.status,
            0,
            reason,
            variant=run.variant,
        )
        actor = run_actor(run.started_by, run.id)
        append(tx, "run.step", run.id, now, contact_id=run.contact_id, clear=clear, otherwise=actor)
        index += 1
        if index >= len(plan.steps):
            _finish(run, now)
            return
        run.status = RunStatus.RUN_STATUS_RUNNING
    if plan.steps[index].wait is not None:
        start_wait(tx, run, plan, index, step_key(run.id, index), now)
        return
    connector = plan.steps[index].connector
    tx.enqueue_step(run.id, index, connector, step_key(run.id, index), now)


def _advance(tx: WriteTx, run: campaigns_pb2.Run, plan: Plan, item: OutboxItem, now: int) -> None:
    nxt = item.step_index + 1
    if item.advance and nxt < len(run.steps):
        run.status = RunStatus.RUN_STATUS_RUNNING
        queue_step(tx, run, plan, nxt, now)
        return
    if not all(s.status in _DONE for s in run.steps):
        # A redriven step finished while later steps are still under way (or the reverse).
        run.status = RunStatus.RUN_STATUS_RUNNING
        return
    _finish(run, now)


def _finish(run: campaigns_pb2.Run, now: int) -> None:
    """End a run whose steps are all done: FAILED if one failed (SKIPPED ones count as done)."""
    failed = any(s.status == StepStatus.STEP_STATUS_FAILED for s in run.steps)
    run.status = RunStatus.RUN_STATUS_FAILED if failed else RunStatus.RUN_STATUS_SUCCEEDED
    set_ts(run.finished_at, now)


_PLAIN = (str, bool, int, float, type(None))


def _struct(value: dict[str, Any]) -> Struct:
    s = Struct()
    if all(type(k) is str and type(v) in _PLAIN for k, v in value.items()):
        # The common answer (ids, flags, counts) needs no JSON round trip.
        s.update(value)
        return s
    # Round-trip through JSON so adapter results with tuples or ints encode predictably.
    s.update(json.loads(json.dumps(value, default=str)))
    return s
