"""Recording a chunk step's item outcomes on its run, inside one write transaction.

A chunk step's result holds `items`: for each contact, its status name, attempts and last
error. An item that is to be tried again keeps the step's outbox row waiting until the
earliest retry time; the items that already ended are not sent again. Once every item has
ended, the step ends: FAILED when an item failed for good (each such item has its own dead
letter, naming the contact), else SUCCEEDED; then the run moves on as any run does.

When the run has ended, its plan keeps only the snapshots of items that failed (a redrive
of their dead letters sends them again); the others, most of a chunk run's size (~400 bytes
a contact), are dropped: nothing sends them again, and under the soak's steady imports
they were a quarter of what the database grew by.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import set_ts
from switchboard.server.rules.payloads import struct_dict
from switchboard.server.rules.plan import Plan
from switchboard.server.runs.outcome import _DONE, TERMINAL_RUN, Outcome, _advance
from switchboard.server.runs.sync_chunk import ITEMS
from switchboard.server.runs.write_back import write_back
from switchboard.server.store.base import DeadLetter, OutboxItem, WriteTx
from switchboard.server.store.event_log import append_details, run_actor
from switchboard.v1 import campaigns_pb2

StepStatus = campaigns_pb2.StepStatus
_ITEM_DONE = frozenset(StepStatus.Name(s) for s in _DONE)


def item_states(run: campaigns_pb2.Run, step_index: int) -> dict[str, dict[str, Any]]:
    """Each item's recorded state in the step (contact id -> status, attempts, error)."""
    step = run.steps[step_index]
    items = struct_dict(step.result).get(ITEMS) if step.HasField("result") else None
    return dict(items) if isinstance(items, dict) else {}


def item_done(state: dict[str, Any] | None) -> bool:
    """Whether an item's recorded state is final (it is not sent again)."""
    return state is not None and state.get("status") in _ITEM_DONE


def item_key(item: OutboxItem, contact_id: str) -> str:
    """The idempotency key of one contact's delivery in a chunk step, on every attempt."""
    return f"{item.idempotency_key}:{contact_id}"


def reopen_item(run: campaigns_pb2.Run, step_index: int, contact_id: str) -> bool:
    """Set a chunk step's item back to pending with a fresh attempt budget (a redriven
    dead letter); False when the step has no such item (not a chunk step)."""
    states = item_states(run, step_index)
    if not struct_dict(run.attributes).get("chunk") or contact_id not in states:
        return False
    states[contact_id] = {"status": StepStatus.Name(StepStatus.STEP_STATUS_PENDING), "attempts": 0}
    result = Struct()
    result.update({ITEMS: states})
    run.steps[step_index].result.CopyFrom(result)
    return True


def chunk_step_key(letter_key: str, contact_id: str) -> str:
    """The chunk step's own key, from one of its items' keys (see `item_key`)."""
    return letter_key.removesuffix(f":{contact_id}")


def record_chunk(
    tx: WriteTx, item: OutboxItem, outcomes: dict[str, Outcome], now: int
) -> campaigns_pb2.Run | None:
    """Apply the items' `outcomes` (contact id -> outcome) to the chunk step and return the
    updated run; None (nothing changed) when the step already ended."""
    run = tx.run(item.run_id)
    if run is None or run.steps[item.step_index].status in _DONE:
        tx.finish_outbox(item.id)
        return None
    step = run.steps[item.step_index]
    plan_step = item.plan.steps[item.step_index]
    states = item_states(run, item.step_index)
    for contact_id, outcome in outcomes.items():
        states[contact_id] = _state(outcome)
        if outcome.status == StepStatus.STEP_STATUS_FAILED:
            _dead_letter(tx, run, item, contact_id, outcome, now)
        elif outcome.status == StepStatus.STEP_STATUS_SUCCEEDED and outcome.result is not None:
            sync = plan_step.sync
            if sync is not None:
                write_back(tx, contact_id, sync, outcome.result, run.id, now)
    retrying = [o for o in outcomes.values() if o.status == StepStatus.STEP_STATUS_RETRYING]
    step.attempts = max((int(s.get("attempts", 0)) for s in states.values()), default=0)
    failed = [c for c, s in states.items() if s.get("status") == "STEP_STATUS_FAILED"]
    step.error = _summary(failed, states, _size(run, item))
    set_ts(step.updated_at, now)
    result = Struct()
    result.update({ITEMS: states})
    step.result.CopyFrom(result)
    if retrying:
        step.status = StepStatus.STEP_STATUS_RETRYING
        retry_at = min(o.retry_at_us for o in retrying)
        tx.retry_outbox(item.id, step.attempts, retry_at)
    else:
        failed_step = StepStatus.STEP_STATUS_FAILED
        step.status = failed_step if failed else StepStatus.STEP_STATUS_SUCCEEDED
        tx.finish_outbox(item.id)
        _advance(tx, run, item.plan, item, now)
        if run.status in TERMINAL_RUN:
            _keep_failed_items(tx, run, item.plan, item.step_index, states)
    set_ts(run.updated_at, now)
    tx.put_run(run)
    body = {
        "step": item.step_index,
        "status": StepStatus.Name(step.status),
        "attempts": step.attempts,
        "items": len(outcomes),
    }
    actor = run_actor(run.started_by, run.id)
    append_details(tx, "run.step", run.id, now, body, run.contact_id, otherwise=actor)
    return run


def _keep_failed_items(
    tx: WriteTx,
    run: campaigns_pb2.Run,
    claimed: Plan,
    recorded: int,
    states: dict[str, dict[str, Any]],
) -> None:
    """Drop an ended chunk run's snapshots but those of items that failed in some step.

    `states` are the item states of step `recorded`, just written: its 100-item result is
    not read back from the Struct built from them."""
    if ITEMS not in claimed.base:
        return
    failed = {
        contact_id
        for index in range(len(run.steps))
        for contact_id, state in (states if index == recorded else item_states(run, index)).items()
        if state.get("status") == "STEP_STATUS_FAILED"
    }
    if not failed:
        # Every snapshot goes: the claimed plan differs from the stored one only in the
        # items erasure scrubbed since, so the ~40-KB stored plan is not read and parsed
        # again (that was 8 % of an import's sync throughput).
        tx.update_plan(run.id, Plan({**claimed.base, ITEMS: {}}, claimed.steps))
        return
    # The stored plan, not the claimed one: erasure may have scrubbed a kept item since.
    plan = tx.run_plan(run.id)
    if plan is None or ITEMS not in plan.base:
        return
    items: dict[str, Any] = plan.base[ITEMS]
    if len(failed) < len(items):
        kept = {c: entry for c, entry in items.items() if c in failed}
        tx.update_plan(run.id, Plan({**plan.base, ITEMS: kept}, plan.steps))


def _size(run: campaigns_pb2.Run, item: OutboxItem) -> int:
    """How many contacts the chunk run covers (its plan may hold only the failed ones)."""
    contacts = struct_dict(run.attributes).get("contacts")
    return int(contacts) if contacts else len(item.plan.base[ITEMS])


def _state(outcome: Outcome) -> dict[str, Any]:
    state: dict[str, Any] = {
        "status": StepStatus.Name(outcome.status),  # type: ignore[arg-type]
        "attempts": outcome.attempts,
    }
    if outcome.error:
        state["error"] = outcome.error
    if outcome.skip_reason:
        state["skip_reason"] = outcome.skip_reason
    return state


def _summary(failed: list[str], states: dict[str, dict[str, Any]], total: int) -> str:
    if not failed:
        return ""
    first = states[failed[0]].get("error", "")
    return f"{len(failed)} of {total} contacts failed (first: {failed[0]}: {first})"


def _dead_letter(
    tx: WriteTx,
    run: campaigns_pb2.Run,
    item: OutboxItem,
    contact_id: str,
    outcome: Outcome,
    now: int,
) -> None:
    step = item.plan.steps[item.step_index]
    letter = DeadLetter(
        id=new_id("d"),
        run_id=run.id,
        step_index=item.step_index,
        connector=step.connector,
        action=step.action,
        contact_id=contact_id,
        idempotency_key=item_key(item, contact_id),
        reason=outcome.dead_reason or "permanent_error",
        attempts=outcome.attempts,
        last_error=outcome.error,
        dead_us=now,
    )
    tx.add_dead_letter(letter)
    body = {"id": letter.id, "step": item.step_index, "contact_id": contact_id}
    actor = run_actor(run.started_by, run.id)
    append_details(tx, "run.step_dead_lettered", run.id, now, body, contact_id, otherwise=actor)
