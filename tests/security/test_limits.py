"""Message size, concurrency and rate limits answer RESOURCE_EXHAUSTED; keepalive policy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import pytest

from switchboard.client import Switchboard, SwitchboardError
from switchboard.server.app.build import App
from switchboard.server.app.transport import server_options
from switchboard.server.config.settings import Settings
from switchboard.server.interceptors.ratelimit import TokenBuckets
from switchboard.v1 import leads_pb2

StartApp = Callable[..., Awaitable[App]]
LIST_CONNECTORS = "/switchboard.v1.Connectors/ListConnectors"


def _limits(**overrides: object) -> dict[str, object]:
    return {"rate_per_s": 0, **overrides}


async def test_request_over_receive_limit_is_resource_exhausted(start_app: StartApp) -> None:
    app = await start_app(limits=_limits(max_receive_message_bytes=2048))
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=5.0) as sb:
        with pytest.raises(SwitchboardError) as caught:
            await sb.contacts.upsert(email="big@example.com", first_name="x" * 4000)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_request_under_receive_limit_is_served(start_app: StartApp) -> None:
    app = await start_app(limits=_limits(max_receive_message_bytes=2048))
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=5.0) as sb:
        contact = await sb.contacts.upsert(email="small@example.com", first_name="Ada")
    assert contact.contact.email == "small@example.com"


async def test_response_over_send_limit_is_resource_exhausted(start_app: StartApp) -> None:
    app = await start_app(limits=_limits(max_send_message_bytes=1024))
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=5.0) as sb:
        for i in range(8):  # each contact is under the limit; a page of all is not
            await sb.contacts.upsert(email=f"p{i}@example.com", first_name="n" * 150)
        with pytest.raises(SwitchboardError) as caught:
            await sb.contacts.list(page_size=8)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def _held_stream(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamCall:  # type: ignore[type-arg]
    """A ScoreLeads stream whose handler is running (one answer received) and stays open."""
    call = channel.stream_stream(
        "/switchboard.v1.LeadScoring/ScoreLeads",
        request_serializer=leads_pb2.ScoreLeadsRequest.SerializeToString,
        response_deserializer=leads_pb2.ScoreLeadsResponse.FromString,
    )(timeout=10.0)
    await call.write(leads_pb2.ScoreLeadsRequest(contact=leads_pb2.ContactRef(email="x@y.io")))
    await call.read()
    return call


async def test_call_over_concurrency_limit_is_refused_at_once(start_app: StartApp) -> None:
    app = await start_app(limits=_limits(max_concurrent_rpcs=1))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        held = await _held_stream(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(LIST_CONNECTORS)(b"", timeout=5.0)
        await held.done_writing()
        await held.code()
        freed = await _eventually_ok(channel)
    assert (caught.value.code(), freed) == (grpc.StatusCode.RESOURCE_EXHAUSTED, True)


async def _eventually_ok(channel: grpc.aio.Channel) -> bool:
    """The slot is freed just after the stream's status leaves the server: allow a moment."""
    for _ in range(100):
        try:
            await channel.unary_unary(LIST_CONNECTORS)(b"", timeout=5.0)
            return True
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.01)
    return False


async def test_health_is_not_counted_by_the_concurrency_limit(start_app: StartApp) -> None:
    app = await start_app(limits=_limits(max_concurrent_rpcs=1))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        held = await _held_stream(channel)
        await channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5.0)
        held.cancel()


async def test_caller_over_rate_is_resource_exhausted(start_app: StartApp) -> None:
    # A refill this slow adds no token during the test: exactly `burst` calls pass.
    app = await start_app(limits=_limits(rate_per_s=0.001, rate_burst=2))
    codes = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        for _ in range(3):
            try:
                await channel.unary_unary(LIST_CONNECTORS)(b"", timeout=5.0)
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
    assert codes == [grpc.StatusCode.OK, grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2.0, burst=3, max_keys=10, clock=clock)
    first = [buckets.take("a") for _ in range(4)]
    clock.now += 1.0  # two tokens back
    second = [buckets.take("a") for _ in range(3)]
    assert (first, second) == ([True, True, True, False], [True, True, False])


def test_buckets_are_per_caller() -> None:
    buckets = TokenBuckets(rate=0.0, burst=1, max_keys=10, clock=FakeClock())
    assert [buckets.take("a"), buckets.take("a"), buckets.take("b")] == [True, False, True]


def test_least_recent_caller_is_forgotten_past_the_bound() -> None:
    buckets = TokenBuckets(rate=0.0, burst=1, max_keys=2, clock=FakeClock())
    buckets.take("a")
    buckets.take("b")
    buckets.take("c")  # evicts "a", which starts again with a full bucket
    assert buckets.take("a") is True


def test_keepalive_and_size_settings_become_grpc_options(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        keepalive={"min_ping_interval_ms": 5000, "max_ping_strikes": 3},
        limits=_limits(max_receive_message_bytes=9999),
    )
    options = dict(server_options(settings))
    assert options == {
        **options,
        "grpc.http2.min_ping_interval_without_data_ms": 5000,
        "grpc.http2.max_ping_strikes": 3,
        "grpc.max_receive_message_length": 9999,
        "grpc.keepalive_permit_without_calls": 1,
    }


async def _ping_flood(port: int) -> grpc.StatusCode:
    """A client that pings every 10 ms with no data: abusive under a 60 s minimum."""
    options = [
        ("grpc.keepalive_time_ms", 10),
        ("grpc.keepalive_timeout_ms", 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        # WatchRun on an unknown run would end at once; a held bidi stream keeps the
        # connection busy with no data, so only pings cross it.
        call = channel.stream_stream("/switchboard.v1.LeadScoring/ScoreLeads")(timeout=10.0)
        try:
            await call.read()
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


async def test_abusive_pinger_is_disconnected(start_app: StartApp) -> None:
    app = await start_app(keepalive={"min_ping_interval_ms": 60000, "max_ping_strikes": 1})
    code = await _ping_flood(app.port)
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_well_behaved_client_is_served(sb: Switchboard) -> None:
    connectors = await sb.connectors.list()
    assert connectors
