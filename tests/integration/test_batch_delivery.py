"""Batching through a running server: triggers from many callers share batch calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.connectors.fake import FakeConnector
from switchboard.v1 import campaigns_pb2

StartApp = Callable[..., Awaitable[App]]


async def test_concurrent_triggers_are_delivered_in_shared_batch_calls(
    start_app: StartApp,
) -> None:
    connectors = {"dest": {"kind": "fake", "options": {"max_batch": 100}}}
    triggers = {"sync": {"steps": [{"connector": "dest", "action": "echo"}]}}
    dispatch = {"poll_interval_s": 0.05, "batch_linger_ms": 200}
    app = await start_app(connectors=connectors, triggers=triggers, dispatch=dispatch)
    fake = app.connectors["dest"]
    assert isinstance(fake, FakeConnector)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=20) as sb:
        runs = await asyncio.gather(
            *(sb.campaigns.trigger("sync", email=f"b{i}@example.com", wait=True) for i in range(30))
        )
    assert [r.status for r in runs] == [campaigns_pb2.RUN_STATUS_SUCCEEDED] * 30
    assert list(fake.calls) == []
    keys = [k for _, batch in fake.batch_calls for k in batch]
    assert sorted(keys) == sorted(f"{r.id}:0" for r in runs)
    assert len(fake.batch_calls) < 30  # shared calls, not one a step
