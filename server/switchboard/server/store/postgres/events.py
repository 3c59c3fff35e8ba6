"""SQL for the event log's envelope and the contacts' data keys (mixed into `PostgresTx`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from switchboard.server.store.event_log import ENVELOPE_VERSION, EventFilter, EventRow

# Per connection: id -> (the connection, its database's server keys). The connection is
# held so that its id cannot be reused by another one while the entry exists.
_SERVER_KEYS: dict[int, tuple[Any, dict[str, bytes]]] = {}
_MAX_CONNECTIONS = 64
_COLUMNS = "seq, type, aggregate_id, contact_id, at_us, version, payload"
_MAX_PARAMS = 500  # per IN (...) list


def _rows(cur: psycopg.Cursor[TupleRow]) -> list[EventRow]:
    return [EventRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in cur]


class EventQueries:
    """Implements `event_log.EventReads` and `EventWrites` over `self._db`."""

    __slots__ = ()
    _db: psycopg.Connection[TupleRow]

    def append_sealed(
        self,
        type_: str,
        aggregate_id: str,
        contact_id: str,
        payload: bytes,
        at_us: int,
        run_id: str = "",
    ) -> int:
        # `run_id` is not stored: PostgreSQL still lists a chunk run's contacts in
        # `run_contacts` (`add_run_contacts`); the page counts that moved SQLite off that
        # table were not repeated on PostgreSQL.
        cur = self._db.execute(
            "INSERT INTO events (type, aggregate_id, contact_id, at_us, version, payload) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq",
            (type_, aggregate_id, contact_id, at_us, ENVELOPE_VERSION, payload),
        ).fetchone()
        return int(cur[0]) if cur else 0

    def event_rows(
        self, after_seq: int, limit: int, flt: EventFilter, through_seq: int = 0
    ) -> list[EventRow]:
        where = ["seq > %s"]
        args: list[Any] = [after_seq]
        if through_seq:
            where.append("seq <= %s")
            args.append(through_seq)
        if flt.types:
            where.append(f"type IN ({', '.join(['%s'] * len(flt.types))})")
            args.extend(flt.types)
        if flt.contact_id:
            where.append("(contact_id = %s OR aggregate_id = %s)")
            args.extend((flt.contact_id, flt.contact_id))
        if flt.until_us:
            where.append("at_us < %s")
            args.append(flt.until_us)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT %s"
        return _rows(self._db.execute(sql.encode(), (*args, limit)))

    def contact_event_rows(
        self, contact_id: str, before_seq: int, limit: int, types: Sequence[str]
    ) -> list[EventRow]:
        # Each way an event belongs to the contact (its own, as the aggregate, through each
        # of its runs) is read on its own index, newest first and at most a page, then
        # merged: `contact_id = ... OR aggregate_id = ... OR aggregate_id IN (...)` let the
        # planner use none of them, and it walked the log backwards (340-440 ms a page at
        # 2,000,000 events for a contact with 40). The runs' events are read run by run
        # (LATERAL), and `runs.id` is compared in the events' collation: in its own ("C")
        # no index on `aggregate_id` serves the comparison, and every event was scanned.
        # Never prepared: a generic plan of this query took a second.
        bound = ""
        args: dict[str, Any] = {"contact": contact_id, "limit": limit}
        if before_seq:
            bound += " AND seq < %(before)s"
            args["before"] = before_seq
        if types:
            bound += " AND type = ANY(%(types)s)"
            args["types"] = list(types)
        page = f"{bound} ORDER BY seq DESC LIMIT %(limit)s"
        arms = (
            f"(SELECT seq FROM events WHERE contact_id = %(contact)s{page}) UNION ALL "
            f"(SELECT seq FROM events WHERE aggregate_id = %(contact)s{page}) UNION ALL "
            "(SELECT e.seq FROM runs r CROSS JOIN LATERAL "
            f'(SELECT seq FROM events WHERE aggregate_id = r.id COLLATE "default"{page}) e '
            "WHERE r.contact_id = %(contact)s ORDER BY e.seq DESC LIMIT %(limit)s)"
        )
        sql = f"SELECT {_COLUMNS} FROM events WHERE seq IN ({arms}) ORDER BY seq DESC"
        return _rows(self._db.execute(f"{sql} LIMIT %(limit)s", args, prepare=False))

    def event_seqs(self, after_seq: int, limit: int) -> list[int]:
        cur = self._db.execute(
            "SELECT seq FROM events WHERE seq > %s ORDER BY seq LIMIT %s", (after_seq, limit)
        )
        return [r[0] for r in cur]

    def event_seq_before(self, at_us: int) -> int:
        row = self._db.execute(
            "SELECT seq FROM events WHERE at_us >= %s ORDER BY at_us, seq LIMIT 1", (at_us,)
        ).fetchone()
        if row is None:
            return self.last_event_seq()
        return int(row[0]) - 1

    def last_event_seq(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0) if row else 0

    def contact_keys(self, contact_ids: Sequence[str]) -> dict[str, tuple[bytes, bytes]]:
        found: dict[str, tuple[bytes, bytes]] = {}
        for start in range(0, len(contact_ids), _MAX_PARAMS):
            chunk = contact_ids[start : start + _MAX_PARAMS]
            cur = self._db.execute(
                "SELECT contact_id, key_id, wrapped FROM contact_keys "
                f"WHERE contact_id IN ({', '.join(['%s'] * len(chunk))})".encode(),
                tuple(chunk),
            )
            for contact_id, key_id, wrapped in cur:
                found[contact_id] = (bytes(key_id), bytes(wrapped))
        return found

    def put_contact_key(self, contact_id: str, key_id: bytes, wrapped: bytes) -> None:
        self._db.execute(
            "INSERT INTO contact_keys (contact_id, key_id, wrapped) VALUES (%s, %s, %s)",
            (contact_id, key_id, wrapped),
        )

    def forget_contact_key(self, contact_id: str) -> None:
        """Destroy the contact's data key: what it sealed can no longer be read."""
        self._db.execute("DELETE FROM contact_keys WHERE contact_id = %s", (contact_id,))

    def server_key_or_none(self, name: str) -> bytes | None:
        # Server keys are written once and never change: remembered per connection, so
        # sealing for a new contact does not read the same row again.
        known = _SERVER_KEYS.get(id(self._db))
        if known is not None and name in known[1]:
            return known[1][name]
        row = self._db.execute("SELECT key FROM server_keys WHERE name = %s", (name,)).fetchone()
        if row is None:
            return None
        if known is None:
            if len(_SERVER_KEYS) >= _MAX_CONNECTIONS:
                del _SERVER_KEYS[next(iter(_SERVER_KEYS))]
            known = _SERVER_KEYS[id(self._db)] = (self._db, {})
        known[1][name] = bytes(row[0])
        return bytes(row[0])
