"""Write-back: a sync destination's answer updates the contact, in the recording transaction.

The write is a normal contact write (version bumped, `contact.updated` event naming the
fields and the run) but it starts no sync run: it came from a destination, and sending it
back out would loop. It applies only when the step SUCCEEDED (a fallback's result is not
the tool's answer), and only once: a duplicate delivery is not recorded twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from switchboard.server.common.timeutil import set_ts
from switchboard.server.rules.sync import StepSync, apply_write_back
from switchboard.server.store import event_values
from switchboard.server.store.base import WriteTx
from switchboard.server.store.event_log import append
from switchboard.v1 import contacts_pb2

log = logging.getLogger(__name__)


def write_back(
    tx: WriteTx,
    contact_id: str,
    sync: StepSync,
    result: Mapping[str, Any],
    run_id: str,
    now: int,
) -> contacts_pb2.Contact | None:
    """Apply `sync.write_back` from `result` to the contact; return it if it changed."""
    if not sync.write_back:
        return None
    contact = tx.contact_by_id(contact_id)
    if contact is None:
        return None  # erased since: nothing to write to
    try:
        fields = apply_write_back(contact, sync.write_back, result)
    except ValueError as exc:
        # The delivery itself succeeded; a value the contact cannot hold is left out.
        log.warning("write-back of run %s to contact %s refused: %s", run_id, contact_id, exc)
        return None
    if not fields:
        return None
    contact.version += 1
    set_ts(contact.updated_at, now)
    tx.put_contact(contact, lists_changed="lists" in fields)
    clear, personal = event_values.contact_changed(contact, fields, "write_back", run_id)
    append(
        tx,
        "contact.updated",
        contact.id,
        now,
        contact_id=contact.id,
        clear=clear,
        personal=personal,
    )
    return contact
