"""Events written before the envelope (schema_version 1) still read, on both stores.

The fixtures were written by the release before events carried values: its database as
SQL (tests/fixtures/events/schema8_database.sql) and its events (schema1_events.jsonl).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from switchboard.server.app.build import App
from switchboard.server.store.base import ReadTx, WriteTx
from switchboard.server.store.event_log import EventFilter, decode_rows
from switchboard.server.store.select import AnyStore
from switchboard.v1 import events_pb2, events_pb2_grpc

FIXTURES = Path(__file__).parent.parent / "fixtures" / "events"
StartApp = Callable[..., Awaitable[App]]


def _legacy_rows() -> list[dict[str, Any]]:
    lines = (FIXTURES / "schema1_events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_old_rows_read_on_each_store(any_store: AnyStore) -> None:
    rows = _legacy_rows()

    def write(tx: WriteTx) -> None:
        for row in rows:
            tx.append_event(row["type"], row["aggregate_id"], row["payload"].encode(), row["at_us"])

    await any_store.write(write)

    def read(tx: ReadTx) -> list[events_pb2.Event]:
        return decode_rows(tx, tx.event_rows(0, 1000, EventFilter())).events

    events = await any_store.read(read)
    assert [e.type for e in events] == [r["type"] for r in rows]
    for event, row in zip(events, rows, strict=True):
        assert event.schema_version == 1
        assert not event.redacted
        assert MessageToDict(event.details) == json.loads(row["payload"])
        assert event.occurred_at.ToMicroseconds() == row["at_us"]
    started = [e for e in events if e.type == "run.started"]
    assert all(e.contact_id == e.details["contact_id"] for e in started)
    created = next(e for e in events if e.type == "contact.created")
    assert created.contact_id == created.aggregate_id


async def test_an_old_database_migrates_and_streams(start_app: StartApp, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "switchboard.db")
    db.executescript((FIXTURES / "schema8_database.sql").read_text())
    db.close()
    app = await start_app()
    rows = _legacy_rows()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = events_pb2_grpc.EventsStub(channel)
        events: list[events_pb2.Event] = []
        request = events_pb2.StreamEventsRequest(stop_at_head=True)
        async for resp in stub.StreamEvents(request, timeout=10):
            events.extend(resp.events)
        assert [e.cursor for e in events] == [r["seq"] for r in rows]
        assert {e.schema_version for e in events} == {1}

        # The live contact's history: its own events and its runs', newest first.
        contact_id = rows[0]["aggregate_id"]
        history = await stub.GetContactHistory(
            events_pb2.GetContactHistoryRequest(contact_id=contact_id, page_size=1000)
        )
        types = [e.type for e in history.events]
        assert {"contact.created", "lead.activity_recorded", "run.started", "run.step"} <= set(
            types
        )
        assert [e.cursor for e in history.events] == sorted(
            (e.cursor for e in history.events), reverse=True
        )
        erased = next(r["aggregate_id"] for r in rows if r["type"] == "contact.erased")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetContactHistory(events_pb2.GetContactHistoryRequest(contact_id=erased))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
