"""Crash-restart: purchases delivered with default concurrency, kill -9 mid-way, restart.

Every `purchase.completed` run records the order in the CRM, raises the popularity of its
skus and tracks one conversion. However deliveries interleave, and whichever step was in
flight at the kill, each purchase must be counted exactly once in each tool.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc, contacts_pb2
from tests.process import ServerProcess

pytestmark = pytest.mark.slow

RUNS = 150
AMOUNT = 2.5
ENV = {
    # A crashed worker's claims come back after the lease: short here to keep the test fast.
    "SWITCHBOARD_DISPATCH__LEASE_S": "2",
    "SWITCHBOARD_DISPATCH__POLL_INTERVAL_S": "0.05",
}


async def _trigger_all(port: int) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = campaigns_pb2_grpc.CampaignTriggersStub(ch)

        async def one(i: int) -> str:
            # Consent to what recommendations and analytics serve, or they are skipped.
            contact = contacts_pb2.Contact(email=f"buyer{i}@example.com")
            for purpose in ("analytics", "personalization"):
                contact.consents[purpose].opt_in = True
            req = campaigns_pb2.TriggerCampaignRequest(event="purchase.completed", contact=contact)
            req.attributes.update(
                {"order_id": f"o{i}", "amount": AMOUNT, "items": [{"sku": "mug", "price": AMOUNT}]}
            )
            return str((await stub.TriggerCampaign(req, timeout=20)).run.id)

        return list(await asyncio.gather(*(one(i) for i in range(RUNS))))


def _state(db: Path, connector: str, collection: str) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT key, value FROM connector_state WHERE connector = ? AND collection = ?",
            (connector, collection),
        ).fetchall()
    finally:
        conn.close()
    return {key: json.loads(value) for key, value in rows}


async def _wait_counted(db: Path, n: int) -> None:
    async with asyncio.timeout(60):
        while len(_state(db, "analytics", "conversion_keys")) < n:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.01)


async def _wait_all_end(port: int, run_ids: list[str]) -> list[campaigns_pb2.Run]:
    done = (campaigns_pb2.RUN_STATUS_SUCCEEDED, campaigns_pb2.RUN_STATUS_FAILED)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = campaigns_pb2_grpc.CampaignTriggersStub(ch)
        async with asyncio.timeout(90):
            while True:
                runs = [
                    (await stub.GetRun(campaigns_pb2.GetRunRequest(id=r), timeout=10)).run
                    for r in run_ids
                ]
                if all(r.status in done for r in runs):
                    return runs
                await asyncio.sleep(0.2)


async def test_kill_9_mid_delivery_counts_each_purchase_once(tmp_path: Path) -> None:
    db = tmp_path / "purchases.db"
    server = ServerProcess(db, ENV)
    try:
        run_ids = await _trigger_all(server.port)
        await _wait_counted(db, RUNS // 4)
    finally:
        server.kill()
    counted_at_kill = len(_state(db, "analytics", "conversion_keys"))
    restarted = ServerProcess(db, ENV)
    try:
        runs = await _wait_all_end(restarted.port, run_ids)
    finally:
        restarted.kill()
    assert counted_at_kill < RUNS  # the kill came while purchases were still being delivered
    assert [r.status for r in runs] == [campaigns_pb2.RUN_STATUS_SUCCEEDED] * RUNS
    totals = _state(db, "analytics", "conversions")["totals"]
    assert totals == {"conversions": RUNS, "revenue": AMOUNT * RUNS}
    assert _state(db, "recommendations", "popularity")["mug"]["count"] == RUNS
    orders = [o for h in _state(db, "crm", "purchases").values() for o in h["orders"]]
    assert len(orders) == RUNS
