"""Health Watch through the guard chain, and the drain on stop: NOT_SERVING while still open."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.client import Switchboard
from switchboard.server.app.build import SERVICE_NAMES, App
from tests.process import ServerProcess
from tests.tooling.test_grpcurl_examples import grpcurl_binary

StartApp = Callable[..., Awaitable[App]]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def _watch(channel: grpc.aio.Channel, service: str = "") -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Watch(health_pb2.HealthCheckRequest(service=service))


@pytest.mark.parametrize(
    "service",
    [
        pytest.param("", id="overall"),
        *(pytest.param(s, id=s.split(".")[-1]) for s in SERVICE_NAMES),
    ],
)
async def test_watch_streams_serving(channel: grpc.aio.Channel, service: str) -> None:
    call = _watch(channel, service)
    first = await asyncio.wait_for(call.read(), 5)
    assert first.status == SERVING
    call.cancel()


async def test_watch_of_an_unknown_service_says_so_and_stays_open(
    channel: grpc.aio.Channel,
) -> None:
    # The health protocol: Watch answers SERVICE_UNKNOWN rather than NOT_FOUND.
    call = _watch(channel, "nope.v1.Nope")
    assert (await asyncio.wait_for(call.read(), 5)).status == SERVICE_UNKNOWN
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(call.read()), 0.2)
    call.cancel()


async def test_watch_turns_not_serving_when_stop_begins(start_app: StartApp) -> None:
    app = await start_app(drain_period_s=0.5)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        call = _watch(channel)
        assert (await asyncio.wait_for(call.read(), 5)).status == SERVING
        stopping = asyncio.create_task(app.stop(grace_s=1.0))
        assert (await asyncio.wait_for(call.read(), 5)).status == NOT_SERVING
        # The stream ends once the drain is over, so it does not hold up the graceful stop.
        assert await asyncio.wait_for(call.read(), 5) is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
        await asyncio.wait_for(stopping, 5)


async def test_check_answers_not_serving_during_the_drain(start_app: StartApp) -> None:
    app = await start_app(drain_period_s=1.0)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
        Switchboard(channel=channel) as sb,
    ):
        await sb.contacts.upsert(email="drain@example.com")
        stub = health_pb2_grpc.HealthStub(channel)
        loop = asyncio.get_running_loop()
        began = loop.time()
        stopping = asyncio.create_task(app.stop(grace_s=1.0))
        await asyncio.sleep(0.3)
        for service in ("", *SERVICE_NAMES):
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            assert resp.status == NOT_SERVING, service
        # Calls already routed here are still answered while balancers take the server out.
        assert (await sb.contacts.get(email="drain@example.com")).email == "drain@example.com"
        await asyncio.wait_for(stopping, 5)
        assert loop.time() - began >= 1.0
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_every_watcher_sees_shutdown_after_another_watcher_left(
    start_app: StartApp,
) -> None:
    app = await start_app(drain_period_s=0.3)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        leaving, staying = _watch(channel), _watch(channel)
        for call in (leaving, staying):
            assert (await asyncio.wait_for(call.read(), 5)).status == SERVING
        leaving.cancel()
        await asyncio.sleep(0.1)  # let the server see the first watcher go
        stopping = asyncio.create_task(app.stop(grace_s=1.0))
        assert (await asyncio.wait_for(staying.read(), 5)).status == NOT_SERVING
        await asyncio.wait_for(stopping, 5)


async def test_a_second_stop_does_not_drain_again(start_app: StartApp) -> None:
    app = await start_app(drain_period_s=0.5)
    await app.stop(grace_s=1.0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await app.stop(grace_s=1.0)
    assert loop.time() - began < 0.5


def _read_status(out: IO[str]) -> str:
    """The next `"status"` grpcurl prints (it pretty-prints one JSON object per message)."""
    for line in out:
        if '"status"' in line:
            return str(json.loads("{" + line.strip().rstrip(",") + "}")["status"])
    raise AssertionError("grpcurl ended without another status")


@pytest.mark.slow
@pytest.mark.parametrize(
    "workers", [pytest.param(1, id="1-worker"), pytest.param(2, id="2-workers")]
)
def test_grpcurl_watch_sees_not_serving_after_sigterm(tmp_path: Path, workers: int) -> None:
    env = {"SWITCHBOARD_DRAIN_PERIOD_S": "1.5", "SWITCHBOARD_GRACE_PERIOD_S": "2"}
    server = ServerProcess(tmp_path / "watch.db", env, workers=workers)
    watch = subprocess.Popen(
        [
            grpcurl_binary(),
            "-plaintext",
            "-d",
            "{}",
            f"127.0.0.1:{server.port}",
            "grpc.health.v1.Health/Watch",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        assert _read_status(watch.stdout) == "SERVING"
        server.proc.send_signal(signal.SIGTERM)
        assert _read_status(watch.stdout) == "NOT_SERVING"
        # The stream ends cleanly once the drain is over (grpcurl exit 0, not 77 for INTERNAL).
        _, err = watch.communicate(timeout=20)
        assert watch.returncode == 0, err
        code, stderr = server.wait()  # one SIGTERM is all it takes
        assert code == 0, stderr
        assert "drain 1.5s" in stderr
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(timeout=10)
        server.kill()
