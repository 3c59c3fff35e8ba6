"""SQL for every store operation, over one sqlite3 connection (see `base.ReadTx`/`WriteTx`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from switchboard.server.common import json_text
from switchboard.server.common.timeutil import now_us
from switchboard.server.rules.plan import Plan
from switchboard.server.rules.segment_facts import day_of
from switchboard.server.store.audience import AudienceQueries
from switchboard.server.store.base import ActivityRow, IdempotencyRecord, RunFilter, Tombstone
from switchboard.server.store.facts import FactsQueries
from switchboard.server.store.rebuild_sql import RebuildQueries
from switchboard.server.store.run_status import OPEN_STATES, run_status_sql
from switchboard.server.store.sqlite.erasure import (
    ERASED_ERROR,
    forget_connector_state,
    forget_idempotency,
    scrub_runs,
)
from switchboard.server.store.sqlite.events import CHUNK_RUNS_OF, OTHER_AGGREGATE, EventQueries
from switchboard.server.store.sqlite.list_page import list_page
from switchboard.server.store.sqlite.outbox import OutboxQueries
from switchboard.server.store.sqlite.variants import VariantQueries
from switchboard.v1 import campaigns_pb2, contacts_pb2, leads_pb2


def _contact(row: tuple[bytes] | None) -> contacts_pb2.Contact | None:
    return None if row is None else contacts_pb2.Contact.FromString(row[0])


def _run(data: bytes) -> campaigns_pb2.Run:
    return campaigns_pb2.Run.FromString(data)


def _us(ts: Any) -> int:
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000


class SqliteTx(
    OutboxQueries, EventQueries, RebuildQueries, VariantQueries, FactsQueries, AudienceQueries
):
    """Implements `ReadTx` and `WriteTx`; the caller owns the transaction boundaries."""

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def _rows(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, args).fetchall()

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    # -- contacts ------------------------------------------------------------------------
    def contact_by_id(self, contact_id: str) -> contacts_pb2.Contact | None:
        cur = self._db.execute("SELECT data FROM contacts WHERE id = ?", (contact_id,))
        return _contact(cur.fetchone())

    def contact_by_email(self, email: str) -> contacts_pb2.Contact | None:
        cur = self._db.execute("SELECT data FROM contacts WHERE email = ?", (email,))
        return _contact(cur.fetchone())

    def tombstone_by_id(self, contact_id: str) -> Tombstone | None:
        row = self._db.execute(
            "SELECT contact_id, deleted_us FROM tombstones WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        return Tombstone(row[0], row[1]) if row else None

    def tombstone_by_email_hash(self, email_hash: str) -> Tombstone | None:
        row = self._db.execute(
            "SELECT contact_id, deleted_us FROM tombstones WHERE email_hash = ?", (email_hash,)
        ).fetchone()
        return Tombstone(row[0], row[1]) if row else None

    def list_contacts(
        self, list_name: str, updated_from_us: int, cursor: tuple[int, str] | None, limit: int
    ) -> list[contacts_pb2.Contact]:
        after = cursor or (updated_from_us, "")
        if cursor and updated_from_us > cursor[0]:
            after = (updated_from_us, "")
        if list_name:
            return [
                contacts_pb2.Contact.FromString(d)
                for d in list_page(self._db, list_name, after, limit)
            ]
        sql = (
            "SELECT data FROM contacts WHERE (updated_us, id) > (?, ?) "
            "ORDER BY updated_us, id LIMIT ?"
        )
        return [
            contacts_pb2.Contact.FromString(r[0]) for r in self._db.execute(sql, (*after, limit))
        ]

    def put_contact(
        self,
        contact: contacts_pb2.Contact,
        lists_changed: bool = True,
        created: bool = False,
        facts_changed: bool = True,
    ) -> None:
        self._db.execute(
            "INSERT INTO contacts (id, email, updated_us, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET email = excluded.email, "
            "updated_us = excluded.updated_us, data = excluded.data",
            (contact.id, contact.email, _us(contact.updated_at), contact.SerializeToString()),
        )
        if facts_changed:  # an upsert of the facts row rewrites its index entries
            self._facts_contact(contact)
        if not lists_changed:
            return  # the list index is already right: most syncs change other fields
        if not created:  # a new contact has no rows to drop (an import saves a statement a row)
            self._db.execute("DELETE FROM contact_lists WHERE contact_id = ?", (contact.id,))
        if contact.lists:
            self._db.executemany(
                "INSERT OR IGNORE INTO contact_lists (list, contact_id) VALUES (?, ?)",
                [(name, contact.id) for name in contact.lists],
            )

    def erase_contact(self, contact_id: str, email: str, email_hash: str, deleted_us: int) -> None:
        self._facts_erase(contact_id)
        self._db.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))
        self._db.execute("DELETE FROM contact_lists WHERE contact_id = ?", (contact_id,))
        self._db.execute("DELETE FROM activities WHERE contact_id = ?", (contact_id,))
        self._db.execute("DELETE FROM leads WHERE contact_id = ?", (contact_id,))
        self._db.execute(
            "INSERT INTO tombstones (contact_id, email_hash, deleted_us) VALUES (?, ?, ?)",
            (contact_id, email_hash, deleted_us),
        )
        forget_idempotency(self._db, contact_id, email)
        run_ids = scrub_runs(self._db, contact_id)
        # A wait may be keyed by the person's data (e.g. their email): the run now ends on
        # its timeout branch instead of on an event about someone who is gone.
        self._db.execute(
            "DELETE FROM waits WHERE run_id IN (SELECT id FROM runs WHERE contact_id = ?)",
            (contact_id,),
        )
        self._db.execute(
            "UPDATE dead_letters SET last_error = ? WHERE contact_id = ?",
            (ERASED_ERROR, contact_id),
        )
        forget_connector_state(self._db, contact_id, email, run_ids)
        # Crypto-shredding: the events sealed with this key stay, unreadable.
        self.forget_contact_key(contact_id)

    # -- events and idempotency ----------------------------------------------------------
    def append_event(self, type_: str, aggregate_id: str, payload: bytes, at_us: int) -> int:
        cur = self._db.execute(
            "INSERT INTO events (type, aggregate_id, at_us, payload) VALUES (?, ?, ?, ?)",
            (type_, aggregate_id, at_us, payload),
        )
        return int(cur.lastrowid or 0)

    def events(self, aggregate_id: str) -> list[tuple[str, bytes]]:
        cur = self._db.execute(
            # A contact's own events are indexed by contact only (see `sqlite/events.py`).
            f"SELECT type, payload FROM events WHERE {OTHER_AGGREGATE} "
            "OR (contact_id = ? AND aggregate_id = ?) ORDER BY seq",
            (aggregate_id, aggregate_id, aggregate_id),
        )
        return [(r[0], r[1]) for r in cur]

    def idempotency(self, key: str) -> IdempotencyRecord | None:
        row = self._db.execute(
            "SELECT method, request_hash, response FROM idempotency WHERE key = ?", (key,)
        ).fetchone()
        return IdempotencyRecord(row[0], row[1], row[2]) if row else None

    def put_idempotency(self, key: str, record: IdempotencyRecord, at_us: int) -> None:
        self._db.execute(
            "INSERT INTO idempotency (key, method, request_hash, response, at_us, contact_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key, record.method, record.request_hash, record.response, at_us, record.contact_id),
        )

    def purge_idempotency(self, before_us: int, limit: int) -> int:
        cur = self._db.execute(
            "DELETE FROM idempotency WHERE key IN "
            "(SELECT key FROM idempotency WHERE at_us < ? ORDER BY at_us LIMIT ?)",
            (before_us, limit),
        )
        return cur.rowcount

    # -- leads ---------------------------------------------------------------------------
    def lead(self, contact_id: str) -> leads_pb2.Lead | None:
        row = self._db.execute(
            "SELECT data FROM leads WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        return leads_pb2.Lead.FromString(row[0]) if row else None

    def put_lead(self, lead: leads_pb2.Lead) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO leads (contact_id, data) VALUES (?, ?)",
            (lead.contact_id, lead.SerializeToString()),
        )
        self._facts_lead(lead)

    def add_activity(
        self, activity_id: str, contact_id: str, row: ActivityRow, attributes: bytes
    ) -> None:
        self._db.execute(
            "INSERT INTO activities (id, contact_id, type, occurred_us, value, attributes) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (activity_id, contact_id, row.type, row.occurred_us, row.value, attributes),
        )
        self._facts_activity(contact_id, row, day_of(now_us()))

    def recent_activities(self, contact_id: str, limit: int) -> list[ActivityRow]:
        cur = self._db.execute(
            "SELECT type, occurred_us, value FROM activities WHERE contact_id = ? "
            "ORDER BY occurred_us DESC LIMIT ?",
            (contact_id, limit),
        )
        return [ActivityRow(r[0], r[1], r[2]) for r in cur]

    def activity_count(self, contact_id: str) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM activities WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        return int(row[0])

    # -- runs and outbox -----------------------------------------------------------------
    def run(self, run_id: str) -> campaigns_pb2.Run | None:
        row = self._db.execute("SELECT data FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run(row[0]) if row else None

    def run_plan(self, run_id: str) -> Plan | None:
        row = self._db.execute("SELECT plan FROM runs WHERE id = ?", (run_id,)).fetchone()
        return Plan.from_json(row[0]) if row else None

    def list_runs(
        self, flt: RunFilter, cursor: tuple[int, str] | None, limit: int
    ) -> list[campaigns_pb2.Run]:
        where: list[str] = ["1"]
        args: list[Any] = []
        if flt.contact_id:
            # Its own runs, and the import chunk runs that carried its changes.
            where.append(f"(contact_id = ? OR id IN ({CHUNK_RUNS_OF}))")
            args.extend((flt.contact_id, flt.contact_id, flt.contact_id))
        if flt.event:
            # With an open state, the open runs are walked (`runs_open`), not the event's
            # whole history (`runs_event`): `+` keeps SQLite off the event's index.
            where.append("+event = ?" if flt.status in OPEN_STATES else "event = ?")
            args.append(flt.event)
        if flt.status:
            where.append(run_status_sql(flt.status))
        if cursor:
            where.append("(created_us, id) < (?, ?)")
            args.extend(cursor)
        sql = (
            f"SELECT data FROM runs WHERE {' AND '.join(where)} "
            "ORDER BY created_us DESC, id DESC LIMIT ?"
        )
        return [_run(r[0]) for r in self._db.execute(sql, (*args, limit))]

    def pending_run(self, contact_id: str, event: str) -> campaigns_pb2.Run | None:
        # `status = 1` (PENDING) spelt out so the partial index `runs_pending` serves it:
        # a contact's finished runs are not walked; nor are the chunk runs it was in, as
        # `run_contacts_pending` only holds PENDING ones.
        row = self._db.execute(
            "SELECT data, id FROM (SELECT created_us, id, data FROM runs "
            "WHERE contact_id = ? AND event = ? AND status = 1 "
            "UNION ALL SELECT r.created_us, r.id, r.data FROM run_contacts_pending c "
            "JOIN runs r ON r.id = c.run_id WHERE c.contact_id = ? AND r.event = ? "
            "AND r.status = 1) ORDER BY created_us DESC, id DESC LIMIT 1",
            (contact_id, event, contact_id, event),
        ).fetchone()
        if row is None:
            return None
        first = self._db.execute(
            "SELECT attempts FROM outbox WHERE run_id = ? AND step_index = 0", (row[1],)
        ).fetchone()
        return _run(row[0]) if first is not None and not first[0] else None

    def add_run_contacts(self, run_id: str, contact_ids: list[str]) -> None:
        # Only while the run is PENDING: for good, the changes' events name the run.
        rows = [(c, run_id) for c in contact_ids]
        self._db.executemany(
            "INSERT OR IGNORE INTO run_contacts_pending (contact_id, run_id) VALUES (?, ?)", rows
        )

    def put_run(
        self, run: campaigns_pb2.Run, plan: Plan | None = None, traceparent: str = ""
    ) -> None:
        data = run.SerializeToString()
        if plan is not None:
            self._db.execute(
                "INSERT INTO runs (id, event, contact_id, status, created_us, data, plan, "
                "traceparent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
                "UPDATE runs SET status = ?, data = ? WHERE id = ?", (run.status, data, run.id)
            )

    # -- connector state -----------------------------------------------------------------
    def state_get(self, connector: str, collection: str, key: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT value FROM connector_state WHERE connector = ? AND collection = ? AND key = ?",
            (connector, collection, key),
        ).fetchone()
        return dict(json_text.loads(row[0])) if row else None

    def state_scan(
        self, connector: str, collection: str, prefix: str, limit: int
    ) -> list[dict[str, Any]]:
        cur = self._db.execute(
            "SELECT value FROM connector_state WHERE connector = ? AND collection = ? "
            "AND key >= ? AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?",
            (connector, collection, prefix, len(prefix), prefix, limit),
        )
        return [dict(json_text.loads(r[0])) for r in cur]

    def state_put(self, connector: str, collection: str, key: str, value: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO connector_state (connector, collection, key, value) "
            "VALUES (?, ?, ?, ?)",
            (connector, collection, key, json_text.dumps(value)),
        )

    def state_delete(self, connector: str, collection: str, key: str) -> bool:
        cur = self._db.execute(
            "DELETE FROM connector_state WHERE connector = ? AND collection = ? AND key = ?",
            (connector, collection, key),
        )
        return cur.rowcount > 0

    def server_key(self, name: str, fresh: bytes) -> bytes:
        self._db.execute(
            "INSERT OR IGNORE INTO server_keys (name, key) VALUES (?, ?)", (name, fresh)
        )
        row = self._db.execute("SELECT key FROM server_keys WHERE name = ?", (name,)).fetchone()
        return bytes(row[0])
