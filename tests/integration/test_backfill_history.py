"""History backfill through a real server: the log's events since a time, replayed in order
to one connector through its batch path, erased people left out, resumable, under quota."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import grpc
import pytest

from switchboard.client import Switchboard
from switchboard.server.app.app import App
from switchboard.server.connectors.fake import FakeConnector
from switchboard.v1 import campaigns_pb2, connectors_pb2, connectors_pb2_grpc

StartApp = Callable[..., Awaitable[App]]
HISTORY = connectors_pb2.BackfillMode.BACKFILL_MODE_HISTORY
ACTIONS = ["contacts.upsert", "events.track", "purchases.record"]
DEST = {"kind": "fake", "options": {"actions": ACTIONS, "max_batch": 50}}
StepStatus = campaigns_pb2.StepStatus
TYPES = ("contact.created", "contact.updated", "lead.activity_recorded")
NO_SYNC: dict[str, object] = {"destinations": {}}  # the log is the only way anything reaches `dest`


def _fake(app: App) -> FakeConnector:
    fake = app.connectors["dest"]
    assert isinstance(fake, FakeConnector)
    return fake


def _sent_keys(app: App) -> list[tuple[str, str]]:
    """(action, idempotency key) of every item the destination received, in arrival order."""
    fake = _fake(app)
    out = [(action, key) for action, keys in fake.batch_calls for key in keys]
    out += [(action, ctx.idempotency_key) for action, _, ctx in fake.calls]
    return out


async def _history_runs(sb: Switchboard) -> dict[str, tuple[int, str, str]]:
    """run id -> (log cursor replayed, event type, contact id), of every history run."""
    found: dict[str, tuple[int, str, str]] = {}
    token = ""
    while True:
        page = await sb.campaigns.list_runs(
            event="contact.history", page_size=500, page_token=token
        )
        for run in page.runs:
            attrs = run.attributes.fields
            found[run.id] = (
                int(attrs["cursor"].number_value), attrs["type"].string_value, run.contact_id
            )
        token = page.next_page_token
        if not token:
            return found


async def _expected(sb: Switchboard, since: datetime) -> list[tuple[int, str]]:
    """(cursor, contact id) of the readable events since `since`, read with StreamEvents."""
    out: list[tuple[int, str]] = []
    async for batch in sb.events.stream(since=since, types=TYPES, stop_at_head=True):
        out.extend((e.cursor, e.contact_id) for e in batch.events)
    return out


async def _write_history(sb: Switchboard, people: int, prefix: str) -> None:
    """Per person: created, one page view, one purchase, then an update."""
    for i in range(people):
        email = f"{prefix}{i}@example.com"
        await sb.contacts.upsert(email=email, first_name="A", country="DE")
        await sb.leads.record_activity(email=email, type="page_view",
                                       attributes={"url": f"/p/{i}"})
        await sb.leads.record_activity(email=email, type="purchase", value=10.0 + i,
                                       attributes={"order_id": f"o-{prefix}{i}"})
        await sb.contacts.upsert(email=email, first_name="B")


async def _drain(stub: connectors_pb2_grpc.ConnectorsAsyncStub,
                 req: connectors_pb2.BackfillConnectorRequest,
                 ) -> list[connectors_pb2.BackfillConnectorResponse]:
    async with asyncio.timeout(60):
        return [p async for p in stub.BackfillConnector(req)]


def _history_request(since: datetime | None = None, segment: str = ""
                     ) -> connectors_pb2.BackfillConnectorRequest:
    req = connectors_pb2.BackfillConnectorRequest(connector="dest", mode=HISTORY, segment=segment)
    if since is not None:
        req.since.FromDatetime(since)
    return req


async def test_history_since_a_date_replays_exactly_those_events_in_order(
    start_app: StartApp,
) -> None:
    app = await start_app(connectors={"dest": DEST}, triggers={}, sync=NO_SYNC)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30.0) as sb, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await _write_history(sb, 5, "old")
        await asyncio.sleep(0.01)
        cut = datetime.now(UTC)
        await asyncio.sleep(0.01)
        await sb.contacts.upsert(email="old1@example.com", last_name="Later")  # an old person
        await _write_history(sb, 40, "new")
        gone = await sb.contacts.get(email="new3@example.com")
        await sb.contacts.delete(email="new3@example.com")
        expected = await _expected(sb, cut)
        assert gone.id not in {c for _, c in expected}  # StreamEvents skips the redacted too
        assert len(expected) == 1 + 39 * 4

        updates = await _drain(connectors_pb2_grpc.ConnectorsStub(channel),
                               _history_request(cut))
        last = updates[-1]
        assert last.done
        assert (last.queued, last.succeeded, last.failed) == (len(expected),) * 2 + (0,)
        assert last.events_skipped == 4  # the erased person's four events
        assert last.events_total == len(expected) + 4
        assert [u.finished for u in updates] == sorted(u.finished for u in updates)

        runs = await _history_runs(sb)
        sent = _sent_keys(app)
        replayed = [runs[key.split(":")[0]] for _, key in sent]
        # Exactly the events since the date, each once, none of the erased person's.
        assert sorted((c, contact) for c, _, contact in replayed) == sorted(expected)
        # In order: each person's events arrive in the order they were written.
        per_contact: dict[str, list[int]] = defaultdict(list)
        for cursor, _, contact in replayed:
            per_contact[contact].append(cursor)
        assert all(c == sorted(c) for c in per_contact.values())
        # As the tool's calls: changes as its contact call, activities as track/purchase.
        pairs = zip(sent, replayed, strict=True)
        by_action = {(kind, action) for (action, _), (_, kind, _) in pairs}
        assert by_action == {
            ("contact.created", "contacts.upsert"),
            ("contact.updated", "contacts.upsert"),
            ("lead.activity_recorded", "events.track"),
            ("lead.activity_recorded", "purchases.record"),
        }
        # Through the batch path: 50 items a call at most, far fewer calls than items.
        batches = [len(keys) for _, keys in _fake(app).batch_calls]
        assert max(batches) <= 50
        assert len(batches) < len(sent) / 3


async def test_history_payloads_carry_the_values_of_the_time(start_app: StartApp) -> None:
    one_by_one = {"kind": "fake", "options": {"actions": ACTIONS}}  # `calls` keep payloads
    app = await start_app(connectors={"dest": one_by_one}, triggers={}, sync=NO_SYNC)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30.0) as sb, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await _write_history(sb, 1, "p")
        await _drain(connectors_pb2_grpc.ConnectorsStub(channel), _history_request())
        calls = [(action, payload) for action, payload, _ in _fake(app).calls]
        assert [a for a, _ in calls] == [
            "contacts.upsert", "events.track", "purchases.record", "contacts.upsert"
        ]
        # Each change as it was then, not the contact as it is now.
        names = [calls[0][1]["contact"]["first_name"], calls[3][1]["contact"]["first_name"]]
        assert names == ["A", "B"]
        assert calls[1][1]["params"]["name"] == "page_view"
        assert calls[1][1]["attributes"]["url"] == "/p/0"
        purchase = calls[2][1]["attributes"]
        assert (purchase["amount"], purchase["order_id"]) == (10.0, "o-p0")


async def test_a_cancelled_history_backfill_resumes_without_duplicates(
    start_app: StartApp,
) -> None:
    app = await start_app(connectors={"dest": DEST}, triggers={}, sync=NO_SYNC)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30.0) as sb, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await _write_history(sb, 120, "r")  # 480 events: three pages of 200
        stub = connectors_pb2_grpc.ConnectorsStub(channel)
        call = stub.BackfillConnector(_history_request())
        first = await call.read()
        call.cancel()  # the client goes away after the first page is queued
        assert isinstance(first, connectors_pb2.BackfillConnectorResponse)
        assert (first.queued, first.events_total, first.done) == (200, 480, False)
        assert first.cursor > 0
        updates = await _drain(stub, _history_request())
        last = updates[-1]
        assert (last.queued, last.events_total, last.done) == (480, 480, True)
        # The cancelled call may have committed the page it was on; this one went on after it.
        assert last.finished in (280, 80)
        async with asyncio.timeout(20):
            while len(_sent_keys(app)) < 480:  # noqa: ASYNC110 - the fake has no signal
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        keys = [key for _, key in _sent_keys(app)]
        # The server stayed up: every event exactly once (a crash could repeat the batch in
        # flight, at least once; a cancel repeats nothing).
        assert len(keys) == len(set(keys)) == 480
        runs = await _history_runs(sb)
        assert len({cursor for cursor, _, _ in runs.values()}) == 480
        # Finished: asked again, nothing more is queued.
        again = await _drain(stub, _history_request())
        assert (again[-1].queued, again[-1].finished, again[-1].done) == (480, 0, True)


async def test_history_backfill_keeps_to_the_daily_quota(start_app: StartApp) -> None:
    # 10 items a call: the 240 events need 24 calls. The bulk lane stops with 20% left.
    limited = {"kind": "fake", "options": {"actions": ACTIONS, "max_batch": 10},
               "daily_quota": 10}
    app = await start_app(connectors={"dest": limited}, triggers={}, sync=NO_SYNC)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30.0) as sb, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await _write_history(sb, 60, "q")
        stub = connectors_pb2_grpc.ConnectorsStub(channel)
        seen: list[connectors_pb2.BackfillConnectorResponse] = []

        async def follow() -> None:
            async for update in stub.BackfillConnector(_history_request()):
                seen.append(update)

        # The quota is spent long before the events are: the backfill waits for tomorrow.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(follow(), 2.5)
        fake = _fake(app)
        assert (len(fake.batch_calls), len(fake.calls)) == (8, 0)
        assert seen
        assert not seen[-1].done
        assert seen[-1].succeeded == len(_sent_keys(app)) <= 80


async def test_history_backfill_of_a_segment(start_app: StartApp) -> None:
    app = await start_app(connectors={"dest": DEST}, triggers={}, sync=NO_SYNC)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30.0) as sb, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await _write_history(sb, 6, "s")
        await sb.contacts.upsert(email="fr@example.com", country="FR")
        await sb.segments.create("french", 'country == "FR"')
        updates = await _drain(connectors_pb2_grpc.ConnectorsStub(channel),
                               _history_request(segment="french"))
        assert (updates[-1].events_total, updates[-1].succeeded) == (1, 1)
        runs = await _history_runs(sb)
        member = await sb.contacts.get(email="fr@example.com")
        assert {contact for _, _, contact in runs.values()} == {member.id}


async def test_backfill_run_starts_name_their_caller(start_app: StartApp) -> None:
    app = await start_app(connectors={"dest": DEST}, triggers={}, sync=NO_SYNC)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30.0) as sb, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await _write_history(sb, 2, "a")
        stub = connectors_pb2_grpc.ConnectorsStub(channel)
        await _drain(stub, connectors_pb2.BackfillConnectorRequest(connector="dest"))
        await _drain(stub, _history_request())
        started = [
            e async for batch in sb.events.stream(types=["run.started"], stop_at_head=True)
            for e in batch.events
        ]
        assert len(started) == 2 + 8
        assert {e.schema_version for e in started} == {2}
        assert {e.actor.kind for e in started} == {"anonymous"}  # auth is off in tests
        events = sorted(e.details.fields["event"].string_value for e in started)
        assert events == ["contact.backfill"] * 2 + ["contact.history"] * 8
        # The dispatcher's step events name who started the backfill, not `system`.
        async with asyncio.timeout(30):
            while True:
                steps = [
                    e async for batch in sb.events.stream(types=["run.step"], stop_at_head=True)
                    for e in batch.events
                ]
                if len(steps) >= len(started):
                    break
                await asyncio.sleep(0.05)
        started_runs = {e.aggregate_id for e in started}
        assert {(e.actor.kind, e.actor.via) for e in steps} == {("anonymous", "dispatcher")}
        assert {e.actor.run_id for e in steps} == started_runs


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        pytest.param(_history_request(segment="nope"), grpc.StatusCode.NOT_FOUND,
                     id="unknown-segment"),
        pytest.param(connectors_pb2.BackfillConnectorRequest(connector="dest", segment="x"),
                     grpc.StatusCode.INVALID_ARGUMENT, id="segment-without-history"),
        pytest.param(connectors_pb2.BackfillConnectorRequest(connector="plain", mode=HISTORY),
                     grpc.StatusCode.FAILED_PRECONDITION, id="no-call-for-history"),
        pytest.param(connectors_pb2.BackfillConnectorRequest(
            connector="dest", mode=connectors_pb2.BackfillMode.ValueType(7)),
                     grpc.StatusCode.INVALID_ARGUMENT, id="unknown-mode"),
    ],
)
async def test_history_backfill_refuses_what_it_cannot_do(
    start_app: StartApp, request_: connectors_pb2.BackfillConnectorRequest,
    code: grpc.StatusCode,
) -> None:
    app = await start_app(connectors={"dest": DEST, "plain": {"kind": "fake"}}, triggers={},
                          sync=NO_SYNC)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _drain(connectors_pb2_grpc.ConnectorsStub(channel), request_)
        assert info.value.code() == code
        assert info.value.details()


async def test_a_person_erased_while_their_history_waits_is_not_sent(
    start_app: StartApp,
) -> None:
    # The quota lets nothing out (the bulk lane keeps 20% of 1 call), so every step waits.
    held = {"kind": "fake", "options": {"actions": ACTIONS, "max_batch": 10}, "daily_quota": 1}
    app = await start_app(connectors={"dest": held}, triggers={}, sync=NO_SYNC)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30.0) as sb, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await _write_history(sb, 3, "w")
        stub = connectors_pb2_grpc.ConnectorsStub(channel)
        call = stub.BackfillConnector(_history_request())
        first = await call.read()
        call.cancel()
        assert isinstance(first, connectors_pb2.BackfillConnectorResponse)
        assert first.queued == 12
        gone = await sb.contacts.get(email="w1@example.com")
        await sb.contacts.delete(email="w1@example.com")
        runs = await sb.campaigns.list_runs(event="contact.history", page_size=100)
        theirs = [r for r in runs.runs if r.contact_id == gone.id]
        assert len(theirs) == 4
        # Held back by the quota counts as an attempt: skipped all the same.
        assert {r.steps[0].status for r in theirs} == {StepStatus.STEP_STATUS_SKIPPED}
        others = [r for r in runs.runs if r.contact_id != gone.id]
        # Still waiting: pending, or retrying once the quota held them back.
        waiting = {StepStatus.STEP_STATUS_PENDING, StepStatus.STEP_STATUS_RETRYING}
        assert len(others) == 8
        assert {r.steps[0].status for r in others} <= waiting
        assert _sent_keys(app) == []
