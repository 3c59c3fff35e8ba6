"""Backfilling a connector through a real server: batched, resumable, erased never sent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import grpc
import pytest

from switchboard.client import Switchboard
from switchboard.server.app.app import App
from switchboard.server.connectors.fake import FakeConnector
from switchboard.v1 import connectors_pb2, connectors_pb2_grpc, contacts_pb2

StartApp = Callable[..., Awaitable[App]]
DEST = {"kind": "fake", "options": {"actions": ["contacts.upsert"], "max_batch": 50}}


async def _import(sb: Switchboard, count: int, prefix: str = "b") -> None:
    rows = [
        contacts_pb2.Contact(email=f"{prefix}{i}@example.com", country="FR") for i in range(count)
    ]
    summary = await sb.contacts.import_([rows[i : i + 500] for i in range(0, count, 500)])
    assert summary.created == count


def _sent(app: App) -> list[str]:
    """The contact ids the destination received, one entry per item sent."""
    fake = app.connectors["dest"]
    assert isinstance(fake, FakeConnector)
    ids: list[str] = []
    for action, keys in fake.batch_calls:
        assert action == "contacts.upsert"
        ids.extend(keys)
    return ids


async def _until_delivered(app: App, count: int) -> None:
    # The fake connector has no completion signal to wait on: poll its record.
    async with asyncio.timeout(20):
        while len(_sent(app)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_backfill_sends_every_contact_once_in_batches_but_not_the_erased(
    start_app: StartApp,
) -> None:
    app = await start_app(connectors={"dest": DEST}, triggers={})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30.0) as sb, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await _import(sb, 120)
        gone = await sb.contacts.get(email="b7@example.com")
        await sb.contacts.delete(email="b7@example.com")
        stub = connectors_pb2_grpc.ConnectorsStub(channel)
        updates = [
            p async for p in stub.BackfillConnector(
                connectors_pb2.BackfillConnectorRequest(connector="dest")
            )
        ]
        last = updates[-1]
        assert (last.queued, last.finished, last.succeeded, last.done) == (119, 119, 119, True)
        assert [u.finished for u in updates] == sorted(u.finished for u in updates)
        fake = app.connectors["dest"]
        assert isinstance(fake, FakeConnector)
        items = _sent(app)
        assert len(items) == 119
        assert 3 <= len(fake.batch_calls) < 119  # the batch path: at most 50 items a call
        runs = await sb.campaigns.list_runs(event="contact.backfill", page_size=500)
        contacts = {r.contact_id for r in runs.runs}
        assert len(contacts) == 119
        assert gone.id not in contacts
        # Finished: calling again sends nothing more.
        again = [
            p async for p in stub.BackfillConnector(
                connectors_pb2.BackfillConnectorRequest(connector="dest")
            )
        ]
        assert (again[-1].queued, again[-1].finished, again[-1].done) == (119, 0, True)
        await asyncio.sleep(0.3)
        assert len(_sent(app)) == 119


async def test_an_interrupted_backfill_continues_where_it_stopped(start_app: StartApp) -> None:
    app = await start_app(connectors={"dest": DEST}, triggers={})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30.0) as sb, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await _import(sb, 450)
        stub = connectors_pb2_grpc.ConnectorsStub(channel)
        call = stub.BackfillConnector(connectors_pb2.BackfillConnectorRequest(connector="dest"))
        first = await call.read()
        call.cancel()  # the client goes away after the first page (200 contacts) is queued
        assert isinstance(first, connectors_pb2.BackfillConnectorResponse)
        assert first.queued == 200
        await _until_delivered(app, 200)
        updates = [
            p async for p in stub.BackfillConnector(
                connectors_pb2.BackfillConnectorRequest(connector="dest")
            )
        ]
        assert (updates[-1].queued, updates[-1].done) == (450, True)
        # The cancelled call learns that its client left at its next message, so it may
        # still commit the page it was on; this call continues after whatever was committed.
        assert updates[-1].finished in (250, 50)
        await _until_delivered(app, 450)
        await asyncio.sleep(0.3)
        items = _sent(app)
        assert len(items) == 450
        runs = await sb.campaigns.list_runs(event="contact.backfill", page_size=500)
        assert len({r.contact_id for r in runs.runs}) == 450  # each contact once


async def test_since_and_restart(start_app: StartApp) -> None:
    app = await start_app(connectors={"dest": DEST}, triggers={})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30.0) as sb, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await _import(sb, 5, "old")
        cut = datetime.now(UTC)
        await asyncio.sleep(0.01)
        await _import(sb, 3, "new")
        stub = connectors_pb2_grpc.ConnectorsStub(channel)
        req = connectors_pb2.BackfillConnectorRequest(connector="dest")
        req.since.FromDatetime(cut)
        updates = [p async for p in stub.BackfillConnector(req)]
        assert updates[-1].queued == 3
        req = connectors_pb2.BackfillConnectorRequest(connector="dest", restart=True)
        updates = [p async for p in stub.BackfillConnector(req)]
        assert (updates[-1].queued, updates[-1].succeeded) == (8, 8)
        assert len(_sent(app)) == 11


@pytest.mark.parametrize(
    ("connector", "code"),
    [
        pytest.param("nope", grpc.StatusCode.NOT_FOUND, id="unknown"),
        pytest.param("plain", grpc.StatusCode.FAILED_PRECONDITION, id="no-contact-action"),
        pytest.param("", grpc.StatusCode.INVALID_ARGUMENT, id="empty"),
    ],
)
async def test_backfill_refuses_what_it_cannot_do(
    start_app: StartApp, connector: str, code: grpc.StatusCode
) -> None:
    app = await start_app(connectors={"dest": DEST, "plain": {"kind": "fake"}}, triggers={})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = connectors_pb2_grpc.ConnectorsStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.BackfillConnector(
                connectors_pb2.BackfillConnectorRequest(connector=connector)
            ):
                pass
        assert info.value.code() == code
