"""Crash-restart: kill -9 with steps in flight; after a restart every step lands exactly once.

The server runs as a child process and delivers through the webhook connector to a peer in
this test process, which records every request by its webhook-id (the step's idempotency
key), like a tool that honours keys. At-least-once delivery may repeat a request that was
in flight at the crash; it never repeats one whose success was recorded, and the repeat
carries the same key, so the tool applies each step once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections import Counter
from pathlib import Path

import grpc

from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc, contacts_pb2
from tests.connectors.http_peer import HttpPeer, Reply
from tests.process import ServerProcess

RUNS = 30
STEPS = 2
SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()


def _env(url: str) -> dict[str, str]:
    hook = {"kind": "webhook", "timeout_s": 2.0, "options": {"url": url, "secret": SECRET}}
    steps = [{"connector": "hook", "action": "webhook.post"}] * STEPS
    return {
        "SWITCHBOARD_CONNECTORS": json.dumps({"hook": hook}),
        "SWITCHBOARD_TRIGGERS": json.dumps({"ping": {"steps": steps}}),
        # A crashed worker's claims come back after the lease: short here to keep the test fast.
        "SWITCHBOARD_DISPATCH__LEASE_S": "3",
        "SWITCHBOARD_DISPATCH__POLL_INTERVAL_S": "0.05",
    }


async def _trigger_all(port: int) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = campaigns_pb2_grpc.CampaignTriggersStub(ch)

        async def one(i: int) -> str:
            req = campaigns_pb2.TriggerCampaignRequest(
                event="ping", contact=contacts_pb2.Contact(email=f"crash{i}@example.com")
            )
            return str((await stub.TriggerCampaign(req, timeout=20)).run.id)

        return list(await asyncio.gather(*(one(i) for i in range(RUNS))))


async def _wait_all_end(port: int, run_ids: list[str]) -> list[campaigns_pb2.Run]:
    done = (campaigns_pb2.RUN_STATUS_SUCCEEDED, campaigns_pb2.RUN_STATUS_FAILED)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = campaigns_pb2_grpc.CampaignTriggersStub(ch)
        async with asyncio.timeout(60):
            while True:
                runs = [
                    (await stub.GetRun(campaigns_pb2.GetRunRequest(id=r), timeout=10)).run
                    for r in run_ids
                ]
                if all(r.status in done for r in runs):
                    return runs
                await asyncio.sleep(0.1)


def _recorded_successes(db: Path) -> set[str]:
    """Step keys whose success the killed server had committed."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT data FROM runs").fetchall()
    keys = set()
    for (data,) in rows:
        run = campaigns_pb2.Run.FromString(data)
        for step in run.steps:
            if step.status == campaigns_pb2.STEP_STATUS_SUCCEEDED:
                keys.add(f"{run.id}:{step.index}")
    return keys


async def _wait_received(peer: HttpPeer, n: int) -> None:
    async with asyncio.timeout(30):
        while len(peer.received) < n:  # noqa: ASYNC110 - the peer runs on another thread
            await asyncio.sleep(0.01)


async def test_kill_9_with_steps_in_flight_delivers_each_step_once(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    with HttpPeer() as peer:
        peer.script.extend(Reply(200, delay_s=0.1) for _ in range(10_000))
        server = ServerProcess(db, _env(peer.url))
        try:
            run_ids = await _trigger_all(server.port)
            await _wait_received(peer, 12)
        finally:
            server.kill()
        before_restart = len(peer.received)
        recorded = _recorded_successes(db)
        restarted = ServerProcess(db, _env(peer.url))
        try:
            runs = await _wait_all_end(restarted.port, run_ids)
        finally:
            restarted.kill()
    expected = {f"{r}:{i}" for r in run_ids for i in range(STEPS)}
    received = [r.headers["webhook-id"] for r in peer.received]
    after_restart = set(received[before_restart:])
    repeats = {key for key, n in Counter(received).items() if n > 1}
    assert [r.status for r in runs] == [campaigns_pb2.RUN_STATUS_SUCCEEDED] * RUNS
    assert set(received) == expected  # every accepted step reached the tool
    assert recorded  # the crash happened mid-way: some successes were already recorded
    assert recorded.isdisjoint(after_restart)  # a recorded success is never delivered again
    assert repeats <= expected - recorded  # only steps in flight at the crash repeat
