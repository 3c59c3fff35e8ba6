"""SQL for the event log's envelope and the contacts' data keys (mixed into `SqliteTx`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from switchboard.server.store.event_log import ENVELOPE_VERSION, EventFilter, EventRow

# Per connection: id -> (the connection, its database's server keys). The connection is
# held so that its id cannot be reused by another one while the entry exists.
_SERVER_KEYS: dict[int, tuple[Any, dict[str, bytes]]] = {}
_MAX_CONNECTIONS = 64
_COLUMNS = "seq, type, aggregate_id, contact_id, at_us, version, payload"
_MAX_PARAMS = 500  # per IN (...) list; SQLite's default limit is far higher
# An event's aggregate is indexed only where it is not the event's contact (the partial
# index `events_other_aggregate`); the others are found through `events_contact`. Each
# term ends with the index's condition so that the planner can use it.
OTHER_AGGREGATE = "(aggregate_id = ? AND aggregate_id <> contact_id)"
# The import chunk runs that carried a contact's changes (two `?`: the contact's id): its
# change events name them; `run_contacts` holds those of files older than that column.
CHUNK_RUNS_OF = (
    "SELECT run_id FROM events WHERE contact_id = ? AND run_id IS NOT NULL "
    "UNION SELECT run_id FROM run_contacts WHERE contact_id = ?"
)


def _rows(cur: sqlite3.Cursor) -> list[EventRow]:
    return [EventRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in cur]


class EventQueries:
    """Implements `event_log.EventReads` and `EventWrites` over `self._db`."""

    __slots__ = ()
    _db: sqlite3.Connection

    def append_sealed(
        self,
        type_: str,
        aggregate_id: str,
        contact_id: str,
        payload: bytes,
        at_us: int,
        run_id: str = "",
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO events (type, aggregate_id, contact_id, at_us, version, payload, "
            "run_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (type_, aggregate_id, contact_id, at_us, ENVELOPE_VERSION, payload, run_id or None),
        )
        return int(cur.lastrowid or 0)

    def event_rows(
        self, after_seq: int, limit: int, flt: EventFilter, through_seq: int = 0
    ) -> list[EventRow]:
        where = ["seq > ?"]
        args: list[Any] = [after_seq]
        if through_seq:
            where.append("seq <= ?")
            args.append(through_seq)
        if flt.types:
            where.append(f"type IN ({','.join('?' * len(flt.types))})")
            args.extend(flt.types)
        if flt.contact_id:
            where.append(f"(contact_id = ? OR {OTHER_AGGREGATE})")
            args.extend((flt.contact_id, flt.contact_id))
        if flt.until_us:
            where.append("at_us < ?")
            args.append(flt.until_us)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        return _rows(self._db.execute(sql, (*args, limit)))

    def contact_event_rows(
        self, contact_id: str, before_seq: int, limit: int, types: Sequence[str]
    ) -> list[EventRow]:
        where = [
            f"(contact_id = ? OR {OTHER_AGGREGATE} OR (aggregate_id IN "
            "(SELECT id FROM runs WHERE contact_id = ?) AND aggregate_id <> contact_id))"
        ]
        args: list[Any] = [contact_id, contact_id, contact_id]
        if before_seq:
            where.append("seq < ?")
            args.append(before_seq)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            args.extend(types)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
        return _rows(self._db.execute(sql, (*args, limit)))

    def event_seqs(self, after_seq: int, limit: int) -> list[int]:
        cur = self._db.execute(
            "SELECT seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        )
        return [r[0] for r in cur]

    def event_seq_before(self, at_us: int) -> int:
        row = self._db.execute(
            "SELECT seq FROM events WHERE at_us >= ? ORDER BY at_us, seq LIMIT 1", (at_us,)
        ).fetchone()
        if row is None:
            return self.last_event_seq()
        return int(row[0]) - 1

    def last_event_seq(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def contact_keys(self, contact_ids: Sequence[str]) -> dict[str, tuple[bytes, bytes]]:
        found: dict[str, tuple[bytes, bytes]] = {}
        for start in range(0, len(contact_ids), _MAX_PARAMS):
            chunk = contact_ids[start : start + _MAX_PARAMS]
            cur = self._db.execute(
                "SELECT contact_id, key_id, wrapped FROM contact_keys "
                f"WHERE contact_id IN ({','.join('?' * len(chunk))})",
                tuple(chunk),
            )
            for contact_id, key_id, wrapped in cur:
                found[contact_id] = (bytes(key_id), bytes(wrapped))
        return found

    def put_contact_key(self, contact_id: str, key_id: bytes, wrapped: bytes) -> None:
        self._db.execute(
            "INSERT INTO contact_keys (contact_id, key_id, wrapped) VALUES (?, ?, ?)",
            (contact_id, key_id, wrapped),
        )

    def forget_contact_key(self, contact_id: str) -> None:
        """Destroy the contact's data key: what it sealed can no longer be read."""
        self._db.execute("DELETE FROM contact_keys WHERE contact_id = ?", (contact_id,))

    def server_key_or_none(self, name: str) -> bytes | None:
        # Server keys are written once and never change: remembered per connection, so
        # sealing for a new contact does not read the same row again.
        known = _SERVER_KEYS.get(id(self._db))
        if known is not None and name in known[1]:
            return known[1][name]
        row = self._db.execute("SELECT key FROM server_keys WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        if known is None:
            if len(_SERVER_KEYS) >= _MAX_CONNECTIONS:
                del _SERVER_KEYS[next(iter(_SERVER_KEYS))]
            known = _SERVER_KEYS[id(self._db)] = (self._db, {})
        known[1][name] = bytes(row[0])
        return bytes(row[0])
