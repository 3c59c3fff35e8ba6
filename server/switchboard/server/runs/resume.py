"""Resuming wait steps from an inbound event, in one write transaction."""

from __future__ import annotations

import json
from typing import Any

from switchboard.server.runs.outcome import Outcome, record
from switchboard.server.store.base import IdempotencyRecord, WriteTx
from switchboard.server.store.event_log import append_details
from switchboard.v1 import campaigns_pb2


def resume_waits(
    tx: WriteTx,
    source: str,
    key: str,
    branch: str,
    event: dict[str, Any],
    dedupe_key: str,
    now: int,
) -> tuple[list[str], bool]:
    """End every wait of `source` parked on `key` with `branch`; return (run ids, replayed).

    `dedupe_key` is stored with the outcome, so the same inbound message resumes nothing
    the second time and gets the first answer back.
    """
    seen = tx.idempotency(dedupe_key)
    if seen is not None:
        return list(json.loads(seen.response)), True
    resumed = []
    for run_id, index in tx.waits_for(source, key):
        item = tx.outbox_item(run_id, index)
        if item is None:
            tx.delete_wait(run_id, index)
            continue
        outcome = Outcome(
            campaigns_pb2.StepStatus.STEP_STATUS_SUCCEEDED,
            1,
            result={"branch": branch, "event": event},
            branch=branch,
        )
        if record(tx, item, outcome, now) is not None:
            resumed.append(run_id)
    body = json.dumps(resumed).encode()
    tx.put_idempotency(dedupe_key, IdempotencyRecord("InboundResume", "", body), now)
    # The log keeps that the event came and what it did; the body itself stays in the
    # results of the steps it resumed.
    note = {"source": source, "key": key, "branch": branch, "resumed": resumed}
    append_details(tx, "inbound.received", f"{source}:{key}", now, note)
    return resumed, False
