"""Reading the event log in tests, as the server reads it (opened, or redacted)."""

from __future__ import annotations

from switchboard.server.store.base import ReadTx, Store
from switchboard.server.store.event_log import EventFilter, decode_rows
from switchboard.v1 import events_pb2


async def events_of(store: Store, aggregate_id: str) -> list[events_pb2.Event]:
    """Every event whose aggregate is `aggregate_id`, oldest first."""

    def read(tx: ReadTx) -> list[events_pb2.Event]:
        rows = tx.event_rows(0, 100_000, EventFilter(contact_id=aggregate_id))
        return [e for e in decode_rows(tx, rows).events if e.aggregate_id == aggregate_id]

    return await store.read(read)
