"""SQL for every store operation, over one psycopg connection (see `base.ReadTx`/`WriteTx`).

The statements mirror `sqlite/tx.py` one for one; the store owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from switchboard.server.common import json_text
from switchboard.server.common.timeutil import now_us
from switchboard.server.rules.plan import Plan
from switchboard.server.rules.segment_facts import day_of
from switchboard.server.store.audience import AudienceQueries
from switchboard.server.store.base import ActivityRow, IdempotencyRecord, RunFilter, Tombstone
from switchboard.server.store.facts import FactsQueries
from switchboard.server.store.postgres.erasure import (
    ERASED_ERROR,
    forget_connector_state,
    forget_idempotency,
    scrub_runs,
)
from switchboard.server.store.postgres.events import EventQueries
from switchboard.server.store.postgres.outbox import OutboxQueries
from switchboard.server.store.postgres.variants import VariantQueries
from switchboard.server.store.rebuild_sql import RebuildQueries
from switchboard.server.store.run_status import run_status_sql
from switchboard.v1 import campaigns_pb2, contacts_pb2, leads_pb2


def _us(ts: Any) -> int:
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000


class PostgresTx(
    OutboxQueries, EventQueries, RebuildQueries, VariantQueries, FactsQueries, AudienceQueries
):
    """Implements `ReadTx` and `WriteTx`; the caller owns the transaction boundaries."""

    __slots__ = ("_db",)

    def __init__(self, db: psycopg.Connection[TupleRow]) -> None:
        self._db = db
        self._notified = False

    def _rows(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._db.execute(sql.replace("?", "%s"), args)
        return cur.fetchall() if cur.description else []

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._db.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)

    # -- contacts ------------------------------------------------------------------------
    def contact_by_id(self, contact_id: str) -> contacts_pb2.Contact | None:
        row = self._db.execute("SELECT data FROM contacts WHERE id = %s", (contact_id,)).fetchone()
        return None if row is None else contacts_pb2.Contact.FromString(row[0])

    def contact_by_email(self, email: str) -> contacts_pb2.Contact | None:
        row = self._db.execute("SELECT data FROM contacts WHERE email = %s", (email,)).fetchone()
        return None if row is None else contacts_pb2.Contact.FromString(row[0])

    def tombstone_by_id(self, contact_id: str) -> Tombstone | None:
        row = self._db.execute(
            "SELECT contact_id, deleted_us FROM tombstones WHERE contact_id = %s", (contact_id,)
        ).fetchone()
        return Tombstone(row[0], row[1]) if row else None

    def tombstone_by_email_hash(self, email_hash: str) -> Tombstone | None:
        row = self._db.execute(
            "SELECT contact_id, deleted_us FROM tombstones WHERE email_hash = %s", (email_hash,)
        ).fetchone()
        return Tombstone(row[0], row[1]) if row else None

    def list_contacts(
        self, list_name: str, updated_from_us: int, cursor: tuple[int, str] | None, limit: int
    ) -> list[contacts_pb2.Contact]:
        after = cursor or (updated_from_us, "")
        if cursor and updated_from_us > cursor[0]:
            after = (updated_from_us, "")
        if list_name:
            rows = self._db.execute(
                "SELECT c.data FROM contact_lists l JOIN contacts c ON c.id = l.contact_id "
                "WHERE l.list = %s AND (c.updated_us, c.id) > (%s, %s) "
                "ORDER BY c.updated_us, c.id LIMIT %s",
                (list_name, after[0], after[1], limit),
            )
        else:
            rows = self._db.execute(
                "SELECT data FROM contacts WHERE (updated_us, id) > (%s, %s) "
                "ORDER BY updated_us, id LIMIT %s",
                (after[0], after[1], limit),
            )
        return [contacts_pb2.Contact.FromString(r[0]) for r in rows]

    def put_contact(
        self,
        contact: contacts_pb2.Contact,
        lists_changed: bool = True,
        created: bool = False,
        facts_changed: bool = True,
    ) -> None:
        self._db.execute(
            "INSERT INTO contacts (id, email, updated_us, data) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET email = excluded.email, "
            "updated_us = excluded.updated_us, data = excluded.data",
            (contact.id, contact.email, _us(contact.updated_at), contact.SerializeToString()),
        )
        if facts_changed:  # an upsert of the facts row rewrites its index entries
            self._facts_contact(contact)
        if not lists_changed:
            return  # the list index is already right: most syncs change other fields
        if not created:
            self._db.execute("DELETE FROM contact_lists WHERE contact_id = %s", (contact.id,))
        if contact.lists:
            self._db.execute(
                "INSERT INTO contact_lists (list, contact_id) "
                "SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
                (list(contact.lists), contact.id),
            )

    def erase_contact(self, contact_id: str, email: str, email_hash: str, deleted_us: int) -> None:
        self._facts_erase(contact_id)
        for table, column in (
            ("contacts", "id"),
            ("contact_lists", "contact_id"),
            ("activities", "contact_id"),
            ("leads", "contact_id"),
        ):
            self._db.execute(f"DELETE FROM {table} WHERE {column} = %s".encode(), (contact_id,))
        self._db.execute(
            "INSERT INTO tombstones (contact_id, email_hash, deleted_us) VALUES (%s, %s, %s)",
            (contact_id, email_hash, deleted_us),
        )
        forget_idempotency(self._db, contact_id, email)
        run_ids = scrub_runs(self._db, contact_id)
        # A wait may be keyed by the person's data: the run ends on its timeout branch.
        self._db.execute(
            "DELETE FROM waits WHERE run_id IN (SELECT id FROM runs WHERE contact_id = %s)",
            (contact_id,),
        )
        self._db.execute(
            "UPDATE dead_letters SET last_error = %s WHERE contact_id = %s",
            (ERASED_ERROR, contact_id),
        )
        forget_connector_state(self._db, contact_id, email, run_ids)
        # Crypto-shredding: the events sealed with this key stay, unreadable.
        self.forget_contact_key(contact_id)

    # -- events and idempotency ----------------------------------------------------------
    def append_event(self, type_: str, aggregate_id: str, payload: bytes, at_us: int) -> int:
        row = self._db.execute(
            "INSERT INTO events (type, aggregate_id, at_us, payload) VALUES (%s, %s, %s, %s) "
            "RETURNING seq",
            (type_, aggregate_id, at_us, payload),
        ).fetchone()
        return int(row[0]) if row else 0

    def events(self, aggregate_id: str) -> list[tuple[str, bytes]]:
        rows = self._db.execute(
            "SELECT type, payload FROM events WHERE aggregate_id = %s ORDER BY seq",
            (aggregate_id,),
        )
        return [(r[0], bytes(r[1])) for r in rows]

    def idempotency(self, key: str) -> IdempotencyRecord | None:
        row = self._db.execute(
            "SELECT method, request_hash, response FROM idempotency WHERE key = %s", (key,)
        ).fetchone()
        return IdempotencyRecord(row[0], row[1], bytes(row[2])) if row else None

    def put_idempotency(self, key: str, record: IdempotencyRecord, at_us: int) -> None:
        self._db.execute(
            "INSERT INTO idempotency (key, method, request_hash, response, at_us, contact_id) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (key, record.method, record.request_hash, record.response, at_us, record.contact_id),
        )

    def purge_idempotency(self, before_us: int, limit: int) -> int:
        cur = self._db.execute(
            "DELETE FROM idempotency WHERE key IN "
            "(SELECT key FROM idempotency WHERE at_us < %s ORDER BY at_us LIMIT %s)",
            (before_us, limit),
        )
        return cur.rowcount

    # -- leads ---------------------------------------------------------------------------
    def lead(self, contact_id: str) -> leads_pb2.Lead | None:
        row = self._db.execute(
            "SELECT data FROM leads WHERE contact_id = %s", (contact_id,)
        ).fetchone()
        return leads_pb2.Lead.FromString(row[0]) if row else None

    def put_lead(self, lead: leads_pb2.Lead) -> None:
        self._db.execute(
            "INSERT INTO leads (contact_id, data) VALUES (%s, %s) "
            "ON CONFLICT (contact_id) DO UPDATE SET data = excluded.data",
            (lead.contact_id, lead.SerializeToString()),
        )
        self._facts_lead(lead)

    def add_activity(
        self, activity_id: str, contact_id: str, row: ActivityRow, attributes: bytes
    ) -> None:
        self._db.execute(
            "INSERT INTO activities (id, contact_id, type, occurred_us, value, attributes) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (activity_id, contact_id, row.type, row.occurred_us, row.value, attributes),
        )
        self._facts_activity(contact_id, row, day_of(now_us()))

    def recent_activities(self, contact_id: str, limit: int) -> list[ActivityRow]:
        rows = self._db.execute(
            "SELECT type, occurred_us, value FROM activities WHERE contact_id = %s "
            "ORDER BY occurred_us DESC LIMIT %s",
            (contact_id, limit),
        )
        return [ActivityRow(r[0], r[1], r[2]) for r in rows]

    def activity_count(self, contact_id: str) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM activities WHERE contact_id = %s", (contact_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    # -- runs ----------------------------------------------------------------------------
    def run(self, run_id: str) -> campaigns_pb2.Run | None:
        row = self._db.execute("SELECT data FROM runs WHERE id = %s", (run_id,)).fetchone()
        return campaigns_pb2.Run.FromString(row[0]) if row else None

    def run_plan(self, run_id: str) -> Plan | None:
        row = self._db.execute("SELECT plan FROM runs WHERE id = %s", (run_id,)).fetchone()
        return Plan.from_json(row[0]) if row else None

    def list_runs(
        self, flt: RunFilter, cursor: tuple[int, str] | None, limit: int
    ) -> list[campaigns_pb2.Run]:
        # Planned for its values every time, never prepared: psycopg prepares a query after
        # five calls, and PostgreSQL may then keep a generic plan, made without the values,
        # which takes any event or contact for an average one and walks `runs_created` for
        # a rare one (up to 379 ms a page at 2,000,000 runs). Only the filters set are written,
        # and the status is spelt out (`run_status_sql`) for the partial indexes.
        where = ["TRUE"]
        args: dict[str, Any] = {"limit": limit}
        if flt.contact_id:
            # Its own runs, and the import chunk runs that carried its changes, as one set
            # of ids: `contact_id = ... OR id IN (...)` defeated both indexes, and the plan
            # walked every run (260-330 ms a page at 2,000,000 runs).
            where.append(
                "id IN (SELECT id FROM runs WHERE contact_id = %(contact)s "
                "UNION ALL SELECT run_id FROM run_contacts WHERE contact_id = %(contact)s)"
            )
            args["contact"] = flt.contact_id
        if flt.event:
            where.append("event = %(event)s")
            args["event"] = flt.event
        if flt.status:
            where.append(run_status_sql(flt.status))
        if cursor:
            where.append("(created_us, id) < (%(created)s, %(id)s)")
            args.update(created=cursor[0], id=cursor[1])
        rows = self._db.execute(
            f"SELECT data FROM runs WHERE {' AND '.join(where)} "
            "ORDER BY created_us DESC, id DESC LIMIT %(limit)s",
            args,
            prepare=False,
        )
        return [campaigns_pb2.Run.FromString(r[0]) for r in rows]

    def pending_run(self, contact_id: str, event: str) -> campaigns_pb2.Run | None:
        # `status = 1` (PENDING) spelt out so the partial index `runs_pending` serves it:
        # a contact's finished runs are not walked; nor are the chunk runs it was in, as
        # `run_contacts_pending` only holds PENDING ones.
        row = self._db.execute(
            "SELECT data, id FROM (SELECT created_us, id, data FROM runs "
            "WHERE contact_id = %(contact)s AND event = %(event)s AND status = 1 "
            "UNION ALL SELECT r.created_us, r.id, r.data FROM run_contacts_pending c "
            "JOIN runs r ON r.id = c.run_id WHERE c.contact_id = %(contact)s "
            "AND r.event = %(event)s AND r.status = 1) AS pending "
            "ORDER BY created_us DESC, id DESC LIMIT 1",
            {"contact": contact_id, "event": event},
        ).fetchone()
        if row is None:
            return None
        first = self._db.execute(
            "SELECT attempts FROM outbox WHERE run_id = %s AND step_index = 0", (row[1],)
        ).fetchone()
        return campaigns_pb2.Run.FromString(row[0]) if first is not None and not first[0] else None

    def add_run_contacts(self, run_id: str, contact_ids: list[str]) -> None:
        self._db.execute(
            "INSERT INTO run_contacts (contact_id, run_id) "
            "SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
            (contact_ids, run_id),
        )
        self._db.execute(
            "INSERT INTO run_contacts_pending (contact_id, run_id) "
            "SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
            (contact_ids, run_id),
        )

    def put_run(
        self, run: campaigns_pb2.Run, plan: Plan | None = None, traceparent: str = ""
    ) -> None:
        data = run.SerializeToString()
        if plan is not None:
            self._db.execute(
                "INSERT INTO runs (id, event, contact_id, status, created_us, data, plan, "
                "traceparent) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    run.id,
                    run.event,
                    run.contact_id,
                    run.status,
                    _us(run.created_at),
                    data,
                    plan.to_json(),
                    traceparent,
                ),
            )
        else:
            self._db.execute(
                "UPDATE runs SET status = %s, data = %s WHERE id = %s", (run.status, data, run.id)
            )

    # -- connector state -----------------------------------------------------------------
    def state_get(self, connector: str, collection: str, key: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT value FROM connector_state "
            "WHERE connector = %s AND collection = %s AND key = %s",
            (connector, collection, key),
        ).fetchone()
        return dict(json_text.loads(row[0])) if row else None

    def state_scan(
        self, connector: str, collection: str, prefix: str, limit: int
    ) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT value FROM connector_state WHERE connector = %s AND collection = %s "
            "AND key >= %s AND left(key, %s) = %s ORDER BY key LIMIT %s",
            (connector, collection, prefix, len(prefix), prefix, limit),
        )
        return [dict(json_text.loads(r[0])) for r in rows]

    def state_put(self, connector: str, collection: str, key: str, value: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO connector_state (connector, collection, key, value) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (connector, collection, key) "
            "DO UPDATE SET value = excluded.value",
            (connector, collection, key, json_text.dumps(value)),
        )

    def state_delete(self, connector: str, collection: str, key: str) -> bool:
        cur = self._db.execute(
            "DELETE FROM connector_state WHERE connector = %s AND collection = %s AND key = %s",
            (connector, collection, key),
        )
        return cur.rowcount > 0

    def server_key(self, name: str, fresh: bytes) -> bytes:
        self._db.execute(
            "INSERT INTO server_keys (name, key) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (name, fresh),
        )
        row = self._db.execute("SELECT key FROM server_keys WHERE name = %s", (name,)).fetchone()
        assert row is not None  # inserted just above, or already there
        return bytes(row[0])
