"""Erasure beyond the contact's own rows: every other place a person's data can be kept.

`SqliteTx.erase_contact` calls these in the erasing transaction. What they leave is what
is not about the person: ids, statuses, times and counts.
"""

from __future__ import annotations

import json
import sqlite3

from switchboard.server.store.chunk_scrub import scrub_chunk
from switchboard.server.store.sqlite.events import CHUNK_RUNS_OF
from switchboard.v1 import campaigns_pb2

ERASED_ERROR = "(cleared: the contact was erased)"


def forget_idempotency(db: sqlite3.Connection, contact_id: str, email: str) -> None:
    """Drop stored answers that hold the person, so a replayed key is served afresh.

    A replay then gets what the same call without a key gets (an upsert of an erased
    email: FAILED_PRECONDITION). Records that name no contact (from before they did, or
    calls about no contact) are dropped when their answer mentions the person's id or email.
    """
    db.execute("DELETE FROM idempotency WHERE contact_id = ?", (contact_id,))
    needles = [contact_id.encode(), *([email.encode()] if email else [])]
    mentions = " OR ".join("instr(response, ?) > 0" for _ in needles)
    db.execute(f"DELETE FROM idempotency WHERE contact_id = '' AND ({mentions})", needles)


def scrub_runs(db: sqlite3.Connection, contact_id: str) -> list[str]:
    """Reduce the person's runs to their shape; return their ids.

    Runs keep their event, steps, statuses and times; the trigger's attributes, what the
    tools answered and error texts may be about the person, and go. Steps still to come
    receive only the contact id (as the plan's contact is reduced to it).
    """
    rows = db.execute(
        "SELECT id, data, plan FROM runs WHERE contact_id = ?", (contact_id,)
    ).fetchall()
    for run_id, data, plan_text in rows:
        run = campaigns_pb2.Run.FromString(data)
        run.ClearField("attributes")
        for step in run.steps:
            step.ClearField("result")
            if step.error:
                step.error = ERASED_ERROR
        plan = json.loads(plan_text)
        base = plan["base"]
        base["contact"] = {"id": contact_id}
        base["attributes"] = {}
        base.pop("lead", None)
        db.execute(
            "UPDATE runs SET data = ?, plan = ? WHERE id = ?",
            (run.SerializeToString(), json.dumps(plan, separators=(",", ":")), run_id),
        )
    chunks = db.execute(
        f"SELECT id, data, plan FROM runs WHERE id IN ({CHUNK_RUNS_OF})",
        (contact_id, contact_id),
    ).fetchall()
    for run_id, data, plan_text in chunks:
        new_data, new_plan = scrub_chunk(bytes(data), plan_text, contact_id)
        db.execute("UPDATE runs SET data = ?, plan = ? WHERE id = ?", (new_data, new_plan, run_id))
    return [row[0] for row in rows]


def forget_connector_state(
    db: sqlite3.Connection, contact_id: str, email: str, run_ids: list[str]
) -> None:
    """Delete built-in connectors' state about the person.

    Their records about a contact are keyed by its id (CRM contact and purchases, list
    subscriptions, purchases bought, offers shown, scores, follow-ups). Records keyed by a
    step of the person's runs (e.g. an email sent) go when they name the person's email.
    The connectors' erase actions, run by the `contact.erased` trigger, do the same for
    tools outside this database.
    """
    for connector, collection in _collections(db):
        db.execute(
            "DELETE FROM connector_state WHERE connector = ? AND collection = ? AND key = ?",
            (connector, collection, contact_id),
        )
        if not email:
            continue
        for run_id in run_ids:
            # Step keys are `<run id>:<index>`; ';' is the character after ':'.
            db.execute(
                "DELETE FROM connector_state WHERE connector = ? AND collection = ? "
                "AND key >= ? AND key < ? AND instr(value, ?) > 0",
                (connector, collection, f"{run_id}:", f"{run_id};", email),
            )


def _collections(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every (connector, collection) holding state, one primary-key seek each."""
    found: list[tuple[str, str]] = []
    row = db.execute(
        "SELECT connector, collection FROM connector_state ORDER BY connector, collection LIMIT 1"
    ).fetchone()
    while row is not None:
        found.append((row[0], row[1]))
        row = db.execute(
            "SELECT connector, collection FROM connector_state "
            "WHERE (connector, collection) > (?, ?) ORDER BY connector, collection LIMIT 1",
            (row[0], row[1]),
        ).fetchone()
    return found
