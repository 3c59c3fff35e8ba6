"""Wait steps: a run pauses until a correlated inbound event arrives or a timeout passes.

A wait is an outbox row under the pseudo-connector `WAIT_CONNECTOR`, due at its timeout,
plus a row in `waits` found by (inbound source, correlation key). Whichever comes first,
the inbound event (`resume`) or the dispatcher claiming the due row (timeout), ends the
step as SUCCEEDED with `result.branch`; the branch's steps are inserted right after it, in
the run and in its plan, and the run goes on. The other path then finds the step done.

Both sides of a match go through `correlation_key`, so equal JSON values meet whichever
route they took: the run's attributes pass through a protobuf Struct, which turns every
number into a double (4711 becomes 4711.0), while the inbound body keeps JSON's integers.
"""

from __future__ import annotations

import math
from typing import Any

from switchboard.server.common.paths import value_at
from switchboard.server.common.timeutil import set_ts
from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import WriteTx
from switchboard.v1 import campaigns_pb2

WAIT_CONNECTOR = "__wait__"
StepStatus = campaigns_pb2.StepStatus


# Integers below 2**53 survive a double exactly. From there on a Struct may have rounded the
# run's value, and matching the rounded digits could resume another person's run.
_EXACT_LIMIT = 2**53


def correlation_key(value: Any) -> str | None:
    """The text under which a correlation value is stored and looked up, or None.

    Strings stay as they are; booleans are `true` / `false`; integral numbers are their
    integer digits, whether they arrive as 4711 or 4711.0; other numbers are Python's
    shortest round-trip text (`47.5`). So the number 4711 and the string "4711" meet, but
    the number and "4711.0" do not. Empty strings, nulls, objects, arrays, non-finite
    numbers and numbers from 2**53 on (send such ids as strings) give None: no event can
    match them.
    """
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) >= _EXACT_LIMIT:
            return None
        if isinstance(value, int) or value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, str) and value:
        return value
    return None


def start_wait(
    tx: WriteTx, run: campaigns_pb2.Run, plan: Plan, index: int, key: str, now: int
) -> None:
    """Park step `index` (a wait) until its event or its timeout."""
    wait = plan.steps[index].wait
    assert wait is not None, "start_wait called for a step that is not a wait"
    match = correlation_key(value_at(plan.base, wait.key))
    if match is not None:
        tx.add_wait(run.id, index, wait.source, match)
    # With no correlation value no event can match: the wait just runs to its timeout.
    due = now + int(wait.timeout_s * 1_000_000)
    tx.enqueue_step(run.id, index, WAIT_CONNECTOR, key, due)
    step = run.steps[index]
    step.status = StepStatus.STEP_STATUS_WAITING
    set_ts(step.updated_at, now)


def take_branch(
    tx: WriteTx, run: campaigns_pb2.Run, plan: Plan, index: int, branch: str, now: int
) -> Plan:
    """Insert the branch's steps after wait step `index`; return the updated plan."""
    tx.delete_wait(run.id, index)
    extended = plan.with_branch(index, branch)
    added = extended.steps[index + 1 : index + 1 + len(extended.steps) - len(plan.steps)]
    if not added:
        return plan
    plan = extended
    steps = list(run.steps)
    new = [
        campaigns_pb2.Step(
            connector=s.connector, action=s.action, status=StepStatus.STEP_STATUS_PENDING
        )
        for s in added
    ]
    for s in new:
        set_ts(s.updated_at, now)
    del run.steps[:]
    for i, s in enumerate([*steps[: index + 1], *new, *steps[index + 1 :]]):
        s.index = i
        run.steps.append(s)
    tx.update_plan(run.id, plan)
    return plan
