"""UpsertContacts through a real server: order, per-item errors, idempotency shared with
UpsertContact, the same sync side effects, cancellation, and a bounded read-ahead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

import grpc
import pytest

from switchboard.client import PermissionDeniedError, Switchboard
from switchboard.server.app.build import App
from switchboard.server.auth.api_keys import generate_key, hash_key
from switchboard.server.domain.contact_stream import DEFAULT_WINDOW, Answer
from switchboard.server.store.base import ReadTx
from switchboard.v1 import campaigns_pb2, contacts_pb2, contacts_pb2_grpc

StartApp = Callable[..., Awaitable[App]]
Request = contacts_pb2.UpsertContactRequest


def _req(email: str, key: str = "", **fields: str) -> Request:
    return Request(contact=contacts_pb2.Contact(email=email, **fields), idempotency_key=key)


async def _stored(app: App, prefix: str) -> list[contacts_pb2.Contact]:
    def read(tx: ReadTx) -> list[contacts_pb2.Contact]:
        return [c for c in tx.list_contacts("", 0, None, 100_000) if c.email.startswith(prefix)]

    return await app.store.read(read)


async def test_answers_come_in_order_and_a_bad_item_does_not_end_the_stream(
    sb: Switchboard,
) -> None:
    await sb.contacts.upsert(email="taken@example.com")
    items = [
        _req("one@example.com", first_name="One"),
        _req("not-an-email"),
        _req("two@example.com"),
        Request(
            contact=contacts_pb2.Contact(email="taken@example.com"),
            mode=contacts_pb2.UPSERT_MODE_CREATE_ONLY,
        ),
        Request(contact=contacts_pb2.Contact(id="c_00000000000000000000000000")),
        _req("three@example.com"),
    ]
    answers = [a async for a in sb.contacts.upsert_many(items)]
    assert [a.index for a in answers] == list(range(len(items)))
    assert [a.WhichOneof("result") for a in answers] == [
        "upserted",
        "error",
        "upserted",
        "error",
        "error",
        "upserted",
    ]
    assert answers[1].error.code == "INVALID_ARGUMENT"
    assert answers[1].error.field_violations[0].field == "contact.email"
    assert answers[1].error.key == "not-an-email"
    assert answers[3].error.code == "ALREADY_EXISTS"
    assert answers[4].error.code == "NOT_FOUND"
    assert answers[0].upserted.created
    assert answers[0].upserted.contact.first_name == "One"
    # Every item carried a fresh key, echoed back with its answer.
    keys = [a.idempotency_key for a in answers]
    assert all(keys)
    assert len(set(keys)) == len(keys)
    got = await sb.contacts.get(email="three@example.com")
    assert got.id == answers[5].upserted.contact.id


async def test_later_items_see_earlier_ones_in_the_same_stream(sb: Switchboard) -> None:
    items = [_req("same@example.com", first_name=f"N{i}") for i in range(30)]
    answers = [a async for a in sb.contacts.upsert_many(items)]
    assert [a.upserted.contact.version for a in answers] == list(range(1, 31))
    assert [a.upserted.created for a in answers] == [True] + [False] * 29
    assert (await sb.contacts.get(email="same@example.com")).first_name == "N29"


async def test_keys_replay_like_unary_and_a_reused_key_fails_alone(sb: Switchboard) -> None:
    unary = await sb.contacts.upsert(
        email="ada@example.com", first_name="Ada", idempotency_key="k-unary"
    )
    items = [
        _req("ada@example.com", "k-unary", first_name="Ada"),  # replay of the unary call
        _req("bob@example.com", "k-bob", first_name="Bob"),
        _req("bob@example.com", "k-bob", first_name="Bob"),  # replay within the stream
        _req("bob@example.com", "k-bob", first_name="Robert"),  # same key, other body
        _req("cy@example.com", "k-cy"),
    ]
    first = [a async for a in sb.contacts.upsert_many(items)]
    assert first[0].upserted == unary
    assert first[2].upserted == first[1].upserted
    assert first[3].error.code == "FAILED_PRECONDITION"
    assert "k-bob" in first[3].error.message
    assert first[4].upserted.created
    # The whole stream again: every answer is the first one, and nothing was written twice.
    again = [a async for a in sb.contacts.upsert_many(items)]
    assert [a.upserted for a in again] == [a.upserted for a in first]
    assert again[3].error.code == "FAILED_PRECONDITION"
    assert (await sb.contacts.get(email="bob@example.com")).version == 1
    # And the unary call with a stream item's key answers what the stream answered.
    replay = await sb.contacts.upsert(
        email="bob@example.com", first_name="Bob", idempotency_key="k-bob"
    )
    assert replay == first[1].upserted


async def test_a_streamed_write_starts_the_same_sync_run_as_unary(start_app: StartApp) -> None:
    from switchboard.server.config.defaults import built_in_connectors

    connectors = {n: c.model_dump() for n, c in built_in_connectors().items()}
    connectors["tool"] = {
        "kind": "fake",
        "options": {"actions": ["contacts.upsert", "contacts.erase"]},
    }
    app = await start_app(
        connectors=connectors, sync={"destinations": {"tool": {"connector": "tool"}}}
    )
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        [answer] = [a async for a in sb.contacts.upsert_many([{"email": "sync@example.com"}])]
        unary = await sb.contacts.upsert(email="unary@example.com")
        contact_ids = (answer.upserted.contact.id, unary.contact.id)
        deadline = time.monotonic() + 10
        while True:
            runs = [
                (await sb.campaigns.list_runs(contact_id=cid, event="contact.changed")).runs
                for cid in contact_ids
            ]
            done = campaigns_pb2.RUN_STATUS_SUCCEEDED
            if all(len(r) == 1 and r[0].status == done for r in runs):
                break
            assert time.monotonic() < deadline, f"runs not finished: {runs}"
            await asyncio.sleep(0.05)
    streamed, single = runs[0][0], runs[1][0]
    assert [(s.connector, s.action) for s in streamed.steps] == [
        (s.connector, s.action) for s in single.steps
    ]
    assert streamed.attributes["fields"] == single.attributes["fields"]


async def test_a_cancelled_stream_leaves_every_answered_item_written(app: App) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        answers = sb.contacts.upsert_many(
            {"email": f"cut-{i:04d}@example.com", "first_name": "Cut"} for i in range(2000)
        )
        answered = [await anext(answers) for _ in range(50)]
        await answers.aclose()  # cancels the call with most items unsent or unanswered
        await asyncio.sleep(0.5)  # let items the server had read finish their commit
        stored = await _stored(app, "cut-")
    ids = {c.id for c in stored}
    assert {a.upserted.contact.id for a in answered} <= ids
    # Whole writes only: every stored item is complete; the stream did not run to the end.
    assert all(c.first_name == "Cut" and c.version == 1 for c in stored)
    assert len(stored) < 2000


def _requests(count: int, sent: list[int]) -> Iterator[contacts_pb2.UpsertContactsRequest]:
    for i in range(count):
        sent[0] += 1
        yield contacts_pb2.UpsertContactsRequest(upserts=[_req(f"slow-{i:05d}@example.com")])


async def test_a_reader_that_stops_reading_stops_the_server_reading(app: App) -> None:
    # Small flow-control windows on the caller's side and no window growth (BDP probing),
    # so what the transport buffers is small beside the 20,000 items offered.
    options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16_384)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}", options=options) as channel:
        call = contacts_pb2_grpc.ContactSyncStub(channel).UpsertContacts(
            _requests(20_000, [0])
        )
        first = await call.read()  # the stream is open; now stop reading
        assert isinstance(first, contacts_pb2.UpsertContactsResponse)
        written = await _settled(app)
        # The server stopped: far fewer items written than offered. It read at most its
        # window ahead of the answers the transport took, which in turn is bounded by the
        # flow-control windows (a few hundred answers of ~120 bytes).
        assert written < 4 * DEFAULT_WINDOW, written
        call.cancel()


async def _settled(app: App, timeout_s: float = 20.0) -> int:
    """The count of written `slow-` contacts once it stopped growing for a second."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(await _stored(app, "slow-"))
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since > 1.0:
            return count
        await asyncio.sleep(0.1)
    pytest.fail(f"the server kept writing: {last} items after {timeout_s} s")


async def test_the_stream_needs_the_write_scope(start_app: StartApp) -> None:
    reader = generate_key()
    callers = {"reader": {"scopes": ["contacts:read"], "key_sha256": [hash_key(reader)]}}
    app = await start_app(auth={"enabled": True, "callers": callers})
    async with Switchboard(f"127.0.0.1:{app.port}", api_key=reader) as sb:
        with pytest.raises(PermissionDeniedError):
            _ = [a async for a in sb.contacts.upsert_many([{"email": "x@example.com"}])]


async def test_a_refused_stream_still_being_written_gets_its_refusal(start_app: StartApp) -> None:
    # Refused before its first read while the client still writes: the status once went out
    # mid-upload and reached the client as INTERNAL ("Internal error from Core") at times.
    reader = generate_key()
    callers = {"reader": {"scopes": ["contacts:read"], "key_sha256": [hash_key(reader)]}}
    app = await start_app(auth={"enabled": True, "callers": callers})
    many = [{"email": f"refused{i}@example.com"} for i in range(3000)]
    async with Switchboard(f"127.0.0.1:{app.port}", api_key=reader) as sb:
        for _ in range(10):
            with pytest.raises(PermissionDeniedError):
                _ = [a async for a in sb.contacts.upsert_many(many)]


async def test_read_ahead_never_exceeds_the_window() -> None:
    from switchboard.server.domain.contact_stream import UpsertStream
    from switchboard.server.domain.contacts import PreparedUpsert

    async def write(items: Sequence[PreparedUpsert]) -> list[Answer]:
        await asyncio.sleep(0.001)
        return [contacts_pb2.UpsertContactResponse(contact=i.contact) for i in items]

    async def offered() -> AsyncIterator[contacts_pb2.UpsertContactsRequest]:
        for i in range(500):
            yield contacts_pb2.UpsertContactsRequest(upserts=[_req(f"w-{i}@example.com")])

    stream = UpsertStream(write, offered(), window=8)
    answers = stream.answers()
    first = await anext(answers)
    await asyncio.sleep(0.1)  # a caller that does not read: the server reads 8 ahead, no more
    assert stream.stats.read == 8
    rest = [r for a in [first] + [a async for a in answers] for r in a.results]
    assert [r.index for r in rest] == list(range(500))
    assert stream.stats.high_water == 8
    assert stream.stats.batches < 500  # items read during a write went out together
