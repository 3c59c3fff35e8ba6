"""A Redis outage: calls keep going on each process's own limits, and come back to Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.config.sections import DispatchSettings
from switchboard.server.dispatch.guard import build_guards
from switchboard.server.dispatch.limits.degrade import Degrading
from switchboard.server.dispatch.limits.local import LocalLimits
from switchboard.server.dispatch.limits.redis import RedisLimits, client_for
from switchboard.v1 import campaigns_pb2
from tests.dispatch.limits.conftest import spec
from tests.redis_server import RedisServer

StartApp = Callable[..., Awaitable[App]]
ERRORS = (RedisError, OSError, TimeoutError)


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.slow
async def test_outage_falls_back_to_local_limits_and_returns(
    redis_binary: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(redis_binary, tmp_path / "redis")
    port = server.port
    guards = build_guards({"c": ConnectorSettings(kind="fake")}, DispatchSettings())
    specs = {"c": spec(max_concurrency=8)}
    shared = RedisLimits(client_for(server.url, 0.25), specs, "me", 30.0, "outage", time.monotonic)
    limits = Degrading(shared, LocalLimits(guards, specs), ERRORS, retry_s=0.2)
    try:
        assert (await limits.acquire("c", "interactive")).source is shared
        server.stop()  # by its pid, mid-test
        during = [await limits.acquire("c", "interactive") for _ in range(5)]
        assert all(t.ok for t in during)  # no call fails for want of Redis
        assert all(t.source is not shared for t in during)
        assert limits.degraded
        assert len(_messages(caplog, "Redis is unreachable")) == 1  # once per transition
        server = RedisServer(redis_binary, tmp_path / "redis2", port=port)
        await asyncio.sleep(0.25)  # past retry_s: the next call tries Redis again
        back = await limits.acquire("c", "interactive")
        assert back.ok
        assert back.source is shared
        assert not limits.degraded
        assert len(_messages(caplog, "reachable again")) == 1
    finally:
        await limits.aclose()
        server.stop()


@pytest.mark.slow
async def test_triggers_and_invokes_keep_working_when_redis_stops(
    start_app: StartApp, redis_binary: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(redis_binary, tmp_path / "redis")
    connectors = {"fake": {"kind": "fake", "rate_per_s": 50, "rate_burst": 5}}
    triggers = {"ping": {"steps": [{"connector": "fake", "action": "echo"}]}}
    limits = {"backend": "redis", "redis_url": server.url, "redis_retry_s": 0.2}
    try:
        app = await start_app(connectors=connectors, triggers=triggers, connector_limits=limits)
        async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
            before = await sb.campaigns.trigger("ping", email="up@example.com", wait=True)
            with server.client() as raw:  # the shared state is really in Redis
                assert raw.keys("{switchboard:limits:fake}:*")
            server.stop()
            during = [
                await sb.campaigns.trigger("ping", email=f"down{i}@example.com", wait=True)
                for i in range(3)
            ]
            invoked = await sb.connectors.invoke("fake", "echo", payload={"x": 1})
    finally:
        server.stop()
    ok = campaigns_pb2.RUN_STATUS_SUCCEEDED
    assert [r.status for r in [before, *during]] == [ok] * 4
    assert invoked is not None
    assert len(_messages(caplog, "Redis is unreachable")) == 1
