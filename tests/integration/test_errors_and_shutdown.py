"""No traceback reaches a caller; stopping lets in-flight calls finish."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import pytest

from switchboard.client import Switchboard, SwitchboardError
from switchboard.server.app.build import App
from switchboard.server.domain.contacts import ContactService
from switchboard.v1 import campaigns_pb2

StartApp = Callable[..., Awaitable[App]]


async def test_unexpected_error_is_internal_without_details(
    sb: Switchboard, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(self: ContactService, req: object) -> None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(ContactService, "get_wire", boom)  # what GetContact calls
    with pytest.raises(SwitchboardError) as info:
        await sb.contacts.get(email="a@example.com")
    assert info.value.code == grpc.StatusCode.INTERNAL
    assert "hunter2" not in str(info.value)
    assert "logged" in info.value.message
    assert "hunter2" in caplog.text  # the operator still sees it in the log
    monkeypatch.undo()
    created = await sb.contacts.upsert(email="still@example.com")  # still serving
    assert created.created


async def test_stop_lets_in_flight_calls_finish(start_app: StartApp) -> None:
    triggers = {"slow.flow": {"steps": [{"connector": "fake", "action": "echo"}]}}
    connectors = {"fake": {"kind": "fake", "options": {"latency_s": 0.5}}}
    app = await start_app(connectors=connectors, triggers=triggers)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        call = asyncio.create_task(
            sb.campaigns.trigger("slow.flow", email="inflight@example.com", wait=True, timeout=10)
        )
        await asyncio.sleep(0.2)  # let the call reach the server and the step start
        await app.stop(grace_s=5.0)
        run = await call
    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
