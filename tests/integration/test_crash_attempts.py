"""Crash-restart and the retry budget: an attempt cut short by kill -9 still counts.

The server delivers through the webhook connector to a peer that records every request and
never answers in time. With `max_attempts = 2`, the server is killed while the second
attempt hangs. After a restart the step must not be tried a third time, and the step's
`attempts` must equal the requests the tool saw.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import grpc
import pytest

from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc, contacts_pb2
from tests.connectors.http_peer import HttpPeer, Reply
from tests.process import ServerProcess

pytestmark = pytest.mark.slow

MAX_ATTEMPTS = 2
SECRET = "whsec_" + base64.b64encode(b"a" * 32).decode()


def _env(url: str) -> dict[str, str]:
    hook = {
        "kind": "webhook",
        "timeout_s": 0.5,
        "max_attempts": MAX_ATTEMPTS,
        "options": {"url": url, "secret": SECRET},
    }
    return {
        "SWITCHBOARD_CONNECTORS": json.dumps({"hook": hook}),
        "SWITCHBOARD_TRIGGERS": json.dumps(
            {"ping": {"steps": [{"connector": "hook", "action": "webhook.post"}]}}
        ),
        "SWITCHBOARD_DISPATCH__LEASE_S": "2",
        "SWITCHBOARD_DISPATCH__POLL_INTERVAL_S": "0.05",
        "SWITCHBOARD_DISPATCH__BASE_BACKOFF_S": "0.05",
        "SWITCHBOARD_DISPATCH__MAX_BACKOFF_S": "0.1",
    }


async def _trigger(port: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = campaigns_pb2_grpc.CampaignTriggersStub(ch)
        req = campaigns_pb2.TriggerCampaignRequest(
            event="ping", contact=contacts_pb2.Contact(email="budget@example.com")
        )
        return str((await stub.TriggerCampaign(req, timeout=20)).run.id)


async def _wait_end(port: int, run_id: str) -> campaigns_pb2.Run:
    done = (campaigns_pb2.RUN_STATUS_SUCCEEDED, campaigns_pb2.RUN_STATUS_FAILED)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = campaigns_pb2_grpc.CampaignTriggersStub(ch)
        async with asyncio.timeout(30):
            while True:
                run = (await stub.GetRun(campaigns_pb2.GetRunRequest(id=run_id), timeout=10)).run
                if run.status in done:
                    return run
                await asyncio.sleep(0.05)


async def _wait_received(peer: HttpPeer, n: int) -> None:
    async with asyncio.timeout(30):
        while len(peer.received) < n:  # noqa: ASYNC110 - the peer runs on another thread
            await asyncio.sleep(0.01)


async def test_an_attempt_in_flight_at_kill_9_counts_against_the_budget(tmp_path: Path) -> None:
    db = tmp_path / "budget.db"
    with HttpPeer() as peer:
        # Every request hangs past the connector's timeout: each one is a failed attempt.
        peer.script.extend(Reply(200, delay_s=3.0) for _ in range(10))
        server = ServerProcess(db, _env(peer.url))
        try:
            run_id = await _trigger(server.port)
            await _wait_received(peer, MAX_ATTEMPTS)  # the last allowed attempt is in flight
        finally:
            server.kill()
        restarted = ServerProcess(db, _env(peer.url))
        try:
            run = await _wait_end(restarted.port, run_id)
            await asyncio.sleep(0.5)  # a late extra attempt would show up by now
        finally:
            restarted.kill()
    calls = len(peer.received)
    assert calls <= MAX_ATTEMPTS
    assert run.status == campaigns_pb2.RUN_STATUS_FAILED
    assert run.steps[0].attempts == calls
    assert "interrupted" in run.steps[0].error
