"""InvokeConnector goes through the connector's limits (one worker: local limits)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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
