"""InvokeConnector goes through the connector's limits (one worker: local limits)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from switchboard.client import Switchboard, SwitchboardError
from switchboard.server.app.build import App

StartApp = Callable[..., Awaitable[App]]


@pytest.mark.parametrize("backend", ["local", "store"])
async def test_daily_quota_refuses_invoke_with_resource_exhausted(
    start_app: StartApp, backend: str
) -> None:
    connectors = {"fake": {"kind": "fake", "daily_quota": 2}}
    app = await start_app(connectors=connectors, triggers={}, connector_limits={"backend": backend})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        for _ in range(2):
            await sb.connectors.invoke("fake", "echo", payload={"x": 1})
        with pytest.raises(SwitchboardError) as refused:
            await sb.connectors.invoke("fake", "echo", payload={"x": 1})
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "daily quota used up (interactive lane)" in str(refused.value)
    assert len(app.connectors["fake"].calls) == 2  # type: ignore[attr-defined]


async def test_open_circuit_refuses_invoke_with_unavailable(start_app: StartApp) -> None:
    connectors = {
        "fake": {
            "kind": "fake",
            "breaker_failures": 1,
            "breaker_cooldown_s": 60,
            "options": {"fail_times": 1},
        }
    }
    app = await start_app(connectors=connectors, triggers={})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        with pytest.raises(SwitchboardError):
            await sb.connectors.invoke("fake", "echo", payload={"x": 1})  # fails: opens
        with pytest.raises(SwitchboardError) as refused:
            await sb.connectors.invoke("fake", "echo", payload={"x": 1})
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert "circuit open" in str(refused.value)
    assert len(app.connectors["fake"].calls) == 1  # type: ignore[attr-defined]


async def test_concurrent_invokes_queue_for_the_connector_slots(start_app: StartApp) -> None:
    connectors = {"fake": {"kind": "fake", "max_concurrency": 2, "options": {"latency_s": 0.1}}}
    app = await start_app(connectors=connectors, triggers={})
    fake = app.connectors["fake"]
    invoke = fake.invoke
    running = [0]
    peak = [0]

    async def spy(action: str, payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        try:
            return await invoke(action, payload, ctx)
        finally:
            running[0] -= 1

    fake.invoke = spy  # type: ignore[method-assign]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        await asyncio.gather(
            *(sb.connectors.invoke("fake", "echo", payload={"i": i}) for i in range(6))
        )
    assert peak[0] == 2  # all six answered, never more than two at the tool at once
