"""kill -9 of a real server mid-campaign: the restarted one finishes it, nobody started twice."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from switchboard.client import Switchboard
from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc
from tests.process import ServerProcess

pytestmark = pytest.mark.slow  # server processes

MEMBERS = 60
EVENT = "newsletter.signup"
ENV = {
    # Slow on purpose: 5 runs a chunk, 20 runs a second, so the kill lands mid-walk.
    "SWITCHBOARD_AUDIENCE__CHUNK": "5",
    "SWITCHBOARD_AUDIENCE__RUNS_PER_S": "20",
    "SWITCHBOARD_AUDIENCE__POLL_INTERVAL_S": "0.1",
}


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_kill_9_mid_walk_resumes_from_the_cursor(tmp_path: Path) -> None:
    db = tmp_path / "audience.db"
    server = ServerProcess(db, ENV)
    try:
        async with Switchboard(f"127.0.0.1:{server.port}", timeout=10.0) as sb:
            for i in range(MEMBERS + 5):
                country = "FR" if i < MEMBERS else "DE"
                await sb.contacts.upsert(email=f"m{i}@example.com", country=country)
            await sb.segments.create("fr", 'country == "FR"')
            stub = campaigns_pb2_grpc.CampaignTriggersStub(sb.channel)
            req = campaigns_pb2.TriggerCampaignRequest(
                event=EVENT, segment="fr", idempotency_key="k"
            )
            campaign_id = (await stub.TriggerCampaign(req)).campaign.id
        async with asyncio.timeout(30):
            while not _query(db, "SELECT 1 FROM campaigns WHERE started >= 15"):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        server.kill()
    started_at_kill = _query(db, "SELECT started FROM campaigns")[0][0]
    restarted = ServerProcess(db, ENV)
    try:
        async with Switchboard(f"127.0.0.1:{restarted.port}", timeout=10.0) as sb:
            stub = campaigns_pb2_grpc.CampaignTriggersStub(sb.channel)
            again = (await stub.TriggerCampaign(req)).campaign  # same key: same campaign
            final = [
                r.campaign
                async for r in stub.WatchCampaign(
                    campaigns_pb2.WatchCampaignRequest(id=campaign_id), timeout=60
                )
            ][-1]
    finally:
        restarted.kill()
    assert isinstance(started_at_kill, int)
    assert started_at_kill < MEMBERS  # the kill came mid-walk
    assert again.id == campaign_id
    assert final.status == campaigns_pb2.CAMPAIGN_STATUS_DONE
    assert (final.started, final.pending, final.failed) == (MEMBERS, 0, 0)
    per_contact = _query(
        db, f"SELECT contact_id, count(*) FROM runs WHERE event = '{EVENT}' GROUP BY contact_id"
    )
    assert len(per_contact) == MEMBERS
    assert {n for _, n in per_contact} == {1}
