"""The event log through real gRPC calls: values, actor, erasure, tailing, resume, history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.auth.api_keys import generate_key, hash_key
from switchboard.server.common.scopes import SCOPE_BY_METHOD
from switchboard.v1 import events_pb2, events_pb2_grpc

StartApp = Callable[..., Awaitable[App]]
WRITER = generate_key()
CALLERS = {
    "crm-sync": {
        "scopes": sorted(set(SCOPE_BY_METHOD.values())),
        "key_sha256": [hash_key(WRITER)],
    },
}


@pytest.fixture
async def secured(start_app: StartApp) -> App:
    return await start_app(auth={"enabled": True, "callers": CALLERS})


@pytest.fixture
async def client(secured: App) -> AsyncIterator[Switchboard]:
    async with Switchboard(f"127.0.0.1:{secured.port}", api_key=WRITER, timeout=10.0) as sb:
        yield sb


def _events(sb: Switchboard) -> events_pb2_grpc.EventsStub:
    return events_pb2_grpc.EventsStub(sb.channel)


_MD = (("authorization", f"Bearer {WRITER}"),)


async def _export(sb: Switchboard, **fields: object) -> tuple[list[events_pb2.Event], int, int]:
    """Everything a stream sends up to the current head: events, skipped, last cursor."""
    request = events_pb2.StreamEventsRequest(stop_at_head=True, **fields)  # type: ignore[arg-type]
    events: list[events_pb2.Event] = []
    skipped = cursor = 0
    async for resp in _events(sb).StreamEvents(request, metadata=_MD, timeout=10):
        events.extend(resp.events)
        skipped += resp.redacted_skipped
        cursor = resp.cursor
    return events, skipped, cursor


async def _person(sb: Switchboard, email: str, amount: float) -> str:
    contact = (
        await sb.contacts.upsert(email=email, first_name="Ada", attributes={"plan": "gold"})
    ).contact
    await sb.leads.record_activity(
        id=contact.id, type="purchase", value=amount, attributes={"sku": "tea-42"}
    )
    return contact.id


async def test_values_and_actor_round_trip(client: Switchboard) -> None:
    cid = await _person(client, "ada@example.com", 19.5)
    events, skipped, _ = await _export(client, contact_id=cid)
    assert skipped == 0
    by_type = {e.type: e for e in events}
    created = by_type["contact.created"]
    assert created.schema_version == 2
    assert created.contact_changed.contact.email == "ada@example.com"
    assert created.contact_changed.contact.attributes["plan"] == "gold"
    assert (created.actor.kind, created.actor.name) == ("api_key", "crm-sync")
    bought = by_type["lead.activity_recorded"]
    assert bought.contact_id == cid
    assert bought.activity_recorded.activity.value == 19.5
    assert bought.activity_recorded.activity.attributes["sku"] == "tea-42"
    assert bought.actor.name == "crm-sync"


async def test_erased_person_is_redacted_while_counts_stay(
    client: Switchboard, secured: App, tmp_path: Path
) -> None:
    gone = await _person(client, "gone@example.com", 30.0)
    kept = await _person(client, "kept@example.com", 12.0)
    before, _, _ = await _export(client, types=["lead.activity_recorded"])
    assert sorted(e.activity_recorded.activity.value for e in before) == [12.0, 30.0]
    await client.contacts.delete(id=gone)

    visible, skipped, _ = await _export(client)
    assert all(e.contact_id != gone or not _personal(e) for e in visible)
    assert not any(b"gone@example.com" in e.SerializeToString() for e in visible)
    assert skipped >= 2  # its contact.created and its purchase
    assert any(e.contact_changed.contact.email == "kept@example.com" for e in visible)

    # With redacted events included, counts and amounts survive; the person does not.
    purchases, _, _ = await _export(client, types=["lead.activity_recorded"], include_redacted=True)
    assert sorted(e.activity_recorded.activity.value for e in purchases) == [12.0, 30.0]
    redacted = [e for e in purchases if e.redacted]
    assert [e.contact_id for e in redacted] == [gone]
    assert not redacted[0].activity_recorded.activity.HasField("attributes")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _events(client).GetContactHistory(
            events_pb2.GetContactHistoryRequest(contact_id=gone), metadata=_MD
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    history = await _events(client).GetContactHistory(
        events_pb2.GetContactHistoryRequest(contact_id=kept), metadata=_MD
    )
    assert "lead.activity_recorded" in [e.type for e in history.events]

    # Nothing readable is left on disk: not in the database file, not in its log.
    db = Path(secured.settings.database.path)
    for path in (db, db.with_name(db.name + "-wal")):
        if path.exists():
            assert b"gone@example.com" not in path.read_bytes(), path


def _personal(event: events_pb2.Event) -> bool:
    change = event.contact_changed.contact
    attrs = event.activity_recorded.activity.attributes
    return bool(change.email or change.first_name or attrs.fields)


async def test_tail_sends_live_events_and_resumes_from_a_cursor(client: Switchboard) -> None:
    await _person(client, "first@example.com", 1.0)
    call = _events(client).StreamEvents(
        events_pb2.StreamEventsRequest(types=["contact.created"]), metadata=_MD, timeout=10
    )
    received: list[events_pb2.Event] = []
    last = 0

    async def until(count: int) -> None:
        nonlocal last
        while len(received) < count:
            resp = await call.read()
            assert resp is not grpc.aio.EOF
            received.extend(resp.events)
            last = resp.cursor

    await asyncio.wait_for(until(1), 5)
    await client.contacts.upsert(email="live@example.com")
    await asyncio.wait_for(until(2), 5)  # woken by the commit, well before the deadline
    assert [e.contact_changed.contact.email for e in received] == [
        "first@example.com",
        "live@example.com",
    ]
    call.cancel()

    await client.contacts.upsert(email="later@example.com")
    after, _, _ = await _export(client, after_cursor=last, types=["contact.created"])
    assert [e.contact_changed.contact.email for e in after] == ["later@example.com"]
    assert all(e.cursor > last for e in after)


async def test_history_pages_newest_first(client: Switchboard) -> None:
    cid = await _person(client, "pages@example.com", 5.0)
    for name in ("B", "C", "D"):
        await client.contacts.upsert(id=cid, first_name=name)
    stub = _events(client)
    seen: list[events_pb2.Event] = []
    token = ""
    while True:
        page = await stub.GetContactHistory(
            events_pb2.GetContactHistoryRequest(
                email="pages@example.com", page_size=2, page_token=token
            ),
            metadata=_MD,
        )
        assert len(page.events) <= 2
        seen.extend(page.events)
        token = page.next_page_token
        if not token:
            break
    cursors = [e.cursor for e in seen]
    assert cursors == sorted(cursors, reverse=True)
    names = [e.contact_changed.contact.first_name for e in seen if e.type == "contact.updated"]
    assert names == ["D", "C", "B"]
    assert {e.type for e in seen} >= {"contact.created", "lead.activity_recorded"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetContactHistory(
            events_pb2.GetContactHistoryRequest(contact_id=cid, page_token="forged.token"),
            metadata=_MD,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_run_steps_are_in_the_history(client: Switchboard) -> None:
    run = await client.campaigns.trigger(
        "newsletter.signup", email="runner@example.com", contact={"consent": True}, wait=True
    )
    page = await _events(client).GetContactHistory(
        events_pb2.GetContactHistoryRequest(contact_id=run.contact_id, types=["run.step"]),
        metadata=_MD,
    )
    assert page.events
    steps = {(e.run_step.connector, e.run_step.action) for e in page.events}
    assert all(e.run_step.run_event == "newsletter.signup" for e in page.events)
    assert len(steps) >= 2
    # Delivered later by the dispatcher, on behalf of the caller who triggered the run.
    actors = {(e.actor.kind, e.actor.name, e.actor.via, e.actor.run_id) for e in page.events}
    assert actors == {("api_key", "crm-sync", "dispatcher", run.id)}


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        pytest.param({"after_cursor": -1}, "after_cursor", id="negative-cursor"),
        pytest.param({"types": [""]}, "types[0]", id="empty-type"),
        pytest.param({"contact_id": "x" * 101}, "contact_id", id="long-contact"),
    ],
)
async def test_bad_stream_requests_are_invalid(
    client: Switchboard, request_fields: dict[str, object], field: str
) -> None:
    request = events_pb2.StreamEventsRequest(**request_fields)  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in _events(client).StreamEvents(request, metadata=_MD, timeout=5):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")


async def test_stream_needs_the_events_scope(start_app: StartApp) -> None:
    reader = generate_key()
    callers = {"reader": {"scopes": ["contacts:read"], "key_sha256": [hash_key(reader)]}}
    app = await start_app(auth={"enabled": True, "callers": callers})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        call = events_pb2_grpc.EventsStub(channel).StreamEvents(
            events_pb2.StreamEventsRequest(stop_at_head=True),
            metadata=(("authorization", f"Bearer {reader}"),),
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "events:read" in (err.value.details() or "")


async def test_streamed_upserts_record_their_caller(client: Switchboard) -> None:
    # The stream writes a batch of items in one transaction, away from the call's task:
    # each item's event must still name the caller, as a unary upsert's does.
    emails = [f"bulk{i}@example.com" for i in range(3)]
    results = [r async for r in client.contacts.upsert_many([{"email": e} for e in emails])]
    assert [r.upserted.contact.email for r in results] == emails
    events, _, _ = await _export(client, types=["contact.created"])
    created = [e for e in events if e.contact_changed.contact.email in emails]
    assert len(created) == 3
    assert {(e.actor.kind, e.actor.name) for e in created} == {("api_key", "crm-sync")}
