"""TriggerCampaign for a segment: one run per member, counted, idempotent (real gRPC)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc

StartApp = Callable[..., Awaitable[App]]
PACE = {"chunk": 3, "runs_per_s": 1000.0, "poll_interval_s": 0.1}


async def _seed(sb: Switchboard, french: int, others: int) -> dict[str, str]:
    ids = {}
    for i in range(french + others):
        email = f"{'fr' if i < french else 'us'}{i}@example.com"
        consent = {"opt_in": True, "source": "test"} if i % 2 else None
        fields: dict[str, Any] = {"email": email, "country": "FR" if i < french else "US"}
        if consent:
            fields["consent"] = True
            fields["consent_source"] = "test"
        ids[email] = (await sb.contacts.upsert(**fields)).contact.id
    await sb.segments.create("french", 'country == "FR"')
    return ids


async def test_one_run_per_member_counted_and_idempotent(
    start_app: StartApp, database: dict[str, Any]
) -> None:
    app = await start_app(database=database, audience=PACE)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        ids = await _seed(sb, french=8, others=3)
        stub = campaigns_pb2_grpc.CampaignTriggersStub(sb.channel)
        req = campaigns_pb2.TriggerCampaignRequest(
            event="newsletter.signup", segment="french", idempotency_key="launch-1"
        )
        req.attributes.update({"wave": "spring"})
        first = (await stub.TriggerCampaign(req)).campaign
        again = (await stub.TriggerCampaign(req)).campaign
        assert first.id
        assert again.id == first.id
        assert (first.event, first.segment, first.audience) == ("newsletter.signup", "french", 8)
        seen = [
            r.campaign
            async for r in stub.WatchCampaign(
                campaigns_pb2.WatchCampaignRequest(id=first.id), timeout=30
            )
        ]
        final = seen[-1]
        assert final.status == campaigns_pb2.CAMPAIGN_STATUS_DONE
        assert (final.started, final.pending) == (8, 0)
        assert final.succeeded + final.skipped + final.failed == 8
        assert final.failed == 0
        assert any(c.status != campaigns_pb2.CAMPAIGN_STATUS_DONE for c in seen[:-1])
        got = await stub.GetCampaign(campaigns_pb2.GetCampaignRequest(id=first.id))
        assert got.campaign == final
        for email, cid in ids.items():
            runs = await sb.campaigns.list_runs(contact_id=cid, event="newsletter.signup")
            assert len(runs.runs) == (1 if email.startswith("fr") else 0), email
            if runs.runs:
                assert runs.runs[0].attributes["wave"] == "spring"


async def test_bad_audience_requests(app: App, sb: Switchboard) -> None:
    stub = campaigns_pb2_grpc.CampaignTriggersStub(sb.channel)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.TriggerCampaign(
            campaigns_pb2.TriggerCampaignRequest(event="newsletter.signup", segment="nobody")
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    await sb.segments.create("all", "lead_score >= 0")
    req = campaigns_pb2.TriggerCampaignRequest(event="newsletter.signup", segment="all")
    req.contact.email = "x@example.com"
    with pytest.raises(grpc.aio.AioRpcError) as both:
        await stub.TriggerCampaign(req)
    assert both.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.GetCampaign(campaigns_pb2.GetCampaignRequest(id="g_" + "0" * 26))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
