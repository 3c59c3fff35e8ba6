"""Erasure in import chunk sync runs: one contact's part removed, the others' kept.

A chunk run (see `runs/sync_chunk.py`) holds many contacts' snapshots in its plan's
`items` and their outcomes in each step's result. Erasing one of them reduces its entry to
the id (the dispatcher then skips it, as a per-contact run's unsent change is skipped) and
drops its error texts, which may quote the person.
"""

from __future__ import annotations

import json

from switchboard.v1 import campaigns_pb2

ERASED_ITEM_ERROR = "(removed: the contact was erased)"


def scrub_chunk(data: bytes, plan_text: str, contact_id: str) -> tuple[bytes, str]:
    """The chunk run's record and plan with `contact_id`'s personal data removed."""
    plan = json.loads(plan_text)
    items = plan["base"].get("items") or {}
    if contact_id in items:
        items[contact_id] = {"contact": {"id": contact_id}, "attributes": {}}
    run = campaigns_pb2.Run.FromString(data)
    for step in run.steps:
        states = step.result.fields.get("items") if step.HasField("result") else None
        state = states.struct_value.fields.get(contact_id) if states is not None else None
        if state is not None and "error" in state.struct_value.fields:
            state.struct_value.fields["error"].string_value = ERASED_ITEM_ERROR
    return run.SerializeToString(), json.dumps(plan, separators=(",", ":"))
