"""Erasure beyond the contact's own rows, in PostgreSQL (mirrors `sqlite/erasure.py`).

`PostgresTx.erase_contact` calls these in the erasing transaction. What they leave is what
is not about the person: ids, statuses, times and counts.
"""

from __future__ import annotations

import json

import psycopg
from psycopg.rows import TupleRow

from switchboard.server.store.chunk_scrub import scrub_chunk
from switchboard.server.store.sqlite.erasure import ERASED_ERROR
from switchboard.v1 import campaigns_pb2

__all__ = ["ERASED_ERROR", "forget_connector_state", "forget_idempotency", "scrub_runs"]

Conn = psycopg.Connection[TupleRow]


def forget_idempotency(db: Conn, contact_id: str, email: str) -> None:
    """Drop stored answers that hold the person (see `sqlite.erasure.forget_idempotency`)."""
    db.execute("DELETE FROM idempotency WHERE contact_id = %s", (contact_id,))
    needles = [contact_id.encode(), *([email.encode()] if email else [])]
    db.execute(
        "DELETE FROM idempotency WHERE contact_id = '' "
        "AND EXISTS (SELECT 1 FROM unnest(%s::bytea[]) AS n WHERE position(n IN response) > 0)",
        (needles,),
    )


def scrub_runs(db: Conn, contact_id: str) -> list[str]:
    """Reduce the person's runs to their shape; return their ids (see `sqlite.erasure`)."""
    rows = db.execute(
        "SELECT id, data, plan FROM runs WHERE contact_id = %s", (contact_id,)
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
            "UPDATE runs SET data = %s, plan = %s WHERE id = %s",
            (run.SerializeToString(), json.dumps(plan, separators=(",", ":")), run_id),
        )
    chunks = db.execute(
        "SELECT r.id, r.data, r.plan FROM run_contacts c JOIN runs r ON r.id = c.run_id "
        "WHERE c.contact_id = %s",
        (contact_id,),
    ).fetchall()
    for run_id, data, plan_text in chunks:
        new_data, new_plan = scrub_chunk(bytes(data), plan_text, contact_id)
        db.execute(
            "UPDATE runs SET data = %s, plan = %s WHERE id = %s", (new_data, new_plan, run_id)
        )
    return [str(row[0]) for row in rows]


def forget_connector_state(db: Conn, contact_id: str, email: str, run_ids: list[str]) -> None:
    """Delete built-in connectors' state about the person (see `sqlite.erasure`).

    Records keyed by the contact id go in every collection; records keyed by a step of the
    person's runs (`<run id>:<index>`) go when their value names the person's email.
    """
    db.execute("DELETE FROM connector_state WHERE key = %s", (contact_id,))
    if not email:
        return
    for run_id in run_ids:
        # Step keys are `<run id>:<index>`; ';' is the character after ':' (byte order: the
        # key column's collation is "C").
        db.execute(
            "DELETE FROM connector_state WHERE key >= %s AND key < %s AND strpos(value, %s) > 0",
            (f"{run_id}:", f"{run_id};", email),
        )
