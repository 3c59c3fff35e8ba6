"""Idempotent triggers under 50 concurrent duplicates, conflicts, and key retention."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from switchboard.client import FailedPreconditionError, Switchboard
from switchboard.server.app.build import App
from switchboard.server.common.timeutil import now_us
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.store.base import IdempotencyRecord, WriteTx
from switchboard.server.store.retention import purge_idempotency
from switchboard.v1 import campaigns_pb2

StartApp = Callable[..., Awaitable[App]]
HOUR_US = 3600 * 1_000_000
PING = {"ping": {"steps": [{"connector": "fake", "action": "echo"}]}}


async def test_50_concurrent_duplicate_triggers_start_one_run(start_app: StartApp) -> None:
    app = await start_app(connectors={"fake": {"kind": "fake"}}, triggers=PING)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=20) as sb:
        runs = await asyncio.gather(
            *(
                sb.campaigns.trigger("ping", email="dup@example.com", idempotency_key="trig-1")
                for _ in range(50)
            )
        )
        assert len({r.id for r in runs}) == 1
        ended = [r async for r in sb.campaigns.watch(runs[0].id)][-1]
        listed = await sb.campaigns.list_runs(event="ping")
    assert ended.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    assert [r.id for r in listed.runs] == [runs[0].id]
    fake = app.connectors["fake"]
    assert isinstance(fake, FakeConnector)
    assert len(fake.calls) == 1  # the side effect happened once


async def test_same_key_with_a_different_trigger_is_refused(start_app: StartApp) -> None:
    app = await start_app(connectors={"fake": {"kind": "fake"}}, triggers=PING)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        await sb.campaigns.trigger("ping", email="one@example.com", idempotency_key="trig-2")
        with pytest.raises(FailedPreconditionError, match="different"):
            await sb.campaigns.trigger("ping", email="two@example.com", idempotency_key="trig-2")


async def test_keys_are_kept_for_the_window_then_purged(app: App) -> None:
    now = now_us()
    ages_h = {"old-49h": 49, "old-25h": 25, "recent-23h": 23, "fresh": 0}

    def seed(tx: WriteTx) -> None:
        for key, hours in ages_h.items():
            record = IdempotencyRecord("TriggerCampaign", "h", b"")
            tx.put_idempotency(key, record, now - hours * HOUR_US)

    await app.store.write(seed)
    purged = await purge_idempotency(app.store, retention_s=24 * 3600)
    kept = {k for k in ages_h if await app.store.read(lambda tx, k=k: tx.idempotency(k))}
    assert purged == 2
    assert kept == {"recent-23h", "fresh"}
