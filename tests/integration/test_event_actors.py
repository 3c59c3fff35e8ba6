"""Every event names who caused it, through real gRPC calls with API keys.

For each event type the server writes, the actor is read back the way a data team would:
Events.StreamEvents and Events.GetContactHistory ("who changed this contact?").
Work done later by the dispatcher (a run's steps) names the caller who started the run,
with `via = "dispatcher"` and the run's id.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import httpx
import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.auth.api_keys import generate_key, hash_key
from switchboard.server.common.scopes import SCOPE_BY_METHOD
from switchboard.server.common.signing import sign
from switchboard.server.config.defaults import built_in_connectors
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.errors import PermanentConnectorError
from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc, events_pb2, events_pb2_grpc

StartApp = Callable[..., Awaitable[App]]
WRITER, OPS = generate_key(), generate_key()
ALL_SCOPES = sorted(set(SCOPE_BY_METHOD.values()))
CALLERS = {
    "crm-sync": {"scopes": ALL_SCOPES, "key_sha256": [hash_key(WRITER)]},
    "ops": {"scopes": ALL_SCOPES, "key_sha256": [hash_key(OPS)]},
}
AUTH = {"enabled": True, "callers": CALLERS}
RunStatus = campaigns_pb2.RunStatus
DONE = (RunStatus.RUN_STATUS_SUCCEEDED, RunStatus.RUN_STATUS_FAILED)
BY_WRITER = ("api_key", "crm-sync", "", "")
WEBHOOK_KEY = b"a" * 32


def _who(event: events_pb2.Event) -> tuple[str, str, str, str]:
    a = event.actor
    return (a.kind, a.name, a.via, a.run_id)


def _dispatched(run_id: str) -> tuple[str, str, str, str]:
    return ("api_key", "crm-sync", "dispatcher", run_id)


def _connectors(**tool: Any) -> dict[str, Any]:
    connectors: dict[str, Any] = {n: c.model_dump() for n, c in built_in_connectors().items()}
    options = {"actions": ["contacts.upsert", "contacts.erase"], **tool}
    connectors["tool"] = {"kind": "fake", "options": options}
    connectors["fake"] = {"kind": "fake", "max_attempts": 1}
    return connectors


def _fake(app: App, name: str) -> FakeConnector:
    return cast(FakeConnector, app.connectors[name])


@pytest.fixture
async def writer(start_app: StartApp) -> AsyncIterator[tuple[App, Switchboard]]:
    # A slow tool taking one call at a time: later changes coalesce behind the first.
    tool = {"latency_s": 0.3}
    connectors = _connectors(**tool)
    connectors["tool"]["max_concurrency"] = 1
    app = await start_app(
        auth=AUTH,
        connectors=connectors,
        sync={"destinations": {"tool": {"connector": "tool"}}},
        triggers={"demo.ping": {"steps": [{"connector": "fake", "action": "echo"}]}},
    )
    async with Switchboard(f"127.0.0.1:{app.port}", api_key=WRITER, timeout=10.0) as sb:
        yield app, sb


async def _history(sb: Switchboard, contact_id: str) -> list[events_pb2.Event]:
    stub = events_pb2_grpc.EventsStub(sb.channel)
    md = (("authorization", f"Bearer {WRITER}"),)
    req = events_pb2.GetContactHistoryRequest(contact_id=contact_id, page_size=1000)
    return list((await stub.GetContactHistory(req, metadata=md)).events)


async def _stream(sb: Switchboard, *types: str) -> list[events_pb2.Event]:
    stub = events_pb2_grpc.EventsStub(sb.channel)
    md = (("authorization", f"Bearer {WRITER}"),)
    req = events_pb2.StreamEventsRequest(stop_at_head=True, types=list(types))
    return [
        e async for resp in stub.StreamEvents(req, metadata=md, timeout=10) for e in resp.events
    ]


async def _finished(
    sb: Switchboard, event: str, count: int, contact_id: str = ""
) -> list[campaigns_pb2.Run]:
    deadline = time.monotonic() + 20
    while True:
        runs = list((await sb.campaigns.list_runs(event=event, contact_id=contact_id)).runs)
        if len(runs) >= count and all(r.status in DONE for r in runs):
            return runs
        assert time.monotonic() < deadline, f"runs not finished: {runs}"
        await asyncio.sleep(0.05)


async def test_sync_runs_and_contact_changes_name_the_writer(
    writer: tuple[App, Switchboard],
) -> None:
    app, sb = writer
    created = (await sb.contacts.upsert(email="who@example.com", first_name="v1")).contact
    deadline = time.monotonic() + 5
    while not _fake(app, "tool").calls:  # the first run's step is in flight
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    for n in (2, 3):
        await sb.contacts.upsert(id=created.id, first_name=f"v{n}")
    runs = await _finished(sb, "contact.changed", 2, created.id)
    history = await _history(sb, created.id)
    by_type: dict[str, set[tuple[str, str, str, str]]] = {}
    for e in history:
        assert e.schema_version == 2, e.type
        by_type.setdefault(e.type, set()).add(_who(e))
    run_ids = {r.id for r in runs}
    assert by_type == {
        "contact.created": {BY_WRITER},
        "contact.updated": {BY_WRITER},
        "run.started": {BY_WRITER},
        "run.coalesced": {BY_WRITER},
        "run.step": {_dispatched(run_id) for run_id in run_ids},
    }
    assert all(r.started_by == "api_key:crm-sync" for r in runs)
    # Who changed this contact: answerable from its history alone.
    changes = [e for e in history if e.type.startswith("contact.")]
    assert {e.actor.name for e in changes} == {"crm-sync"}


async def test_dead_letters_and_redrives_name_their_callers(
    writer: tuple[App, Switchboard],
) -> None:
    app, sb = writer
    _fake(app, "fake").script("echo", PermanentConnectorError("422 rejected"))
    run = await sb.campaigns.trigger("demo.ping", email="dl@example.com", wait=True)
    assert run.status == RunStatus.RUN_STATUS_FAILED
    [letter] = (await sb.connectors.list_dead_letters(connector="fake")).dead_letters
    async with Switchboard(f"127.0.0.1:{app.port}", api_key=OPS, timeout=10.0) as ops:
        await ops.connectors.redrive_dead_letters([letter.id])
    await _finished(sb, "demo.ping", 1, run.contact_id)
    history = await _history(sb, run.contact_id)
    run_events = [(e.type, _who(e)) for e in reversed(history) if e.aggregate_id == run.id]
    assert run_events == [
        ("run.started", BY_WRITER),
        ("run.step_dead_lettered", _dispatched(run.id)),
        ("run.step", _dispatched(run.id)),
        ("run.step_redriven", ("api_key", "ops", "", "")),
        ("run.step", _dispatched(run.id)),  # the step again, for who started the run
    ]


async def test_chunk_runs_name_the_importer(start_app: StartApp) -> None:
    app = await start_app(
        auth=AUTH,
        connectors=_connectors(max_batch=100),
        sync={"chunk_runs": True, "destinations": {"tool": {"connector": "tool"}}},
        dispatch={"poll_interval_s": 0.05, "batch_linger_ms": 0},
    )
    _fake(app, "tool").fail_email("bad@example.com", PermanentConnectorError("no such list"))
    rows = [{"email": f"ok{i}@example.com"} for i in range(3)] + [{"email": "bad@example.com"}]
    async with Switchboard(f"127.0.0.1:{app.port}", api_key=WRITER, timeout=30) as sb:
        await sb.contacts.import_([rows])
        [run] = await _finished(sb, "contact.changed", 1)
        [letter] = (await sb.connectors.list_dead_letters()).dead_letters
        started = await _stream(sb, "run.started", "run.step")
        history = await _history(sb, letter.contact_id)
    assert run.started_by == "api_key:crm-sync"
    assert [(e.type, _who(e)) for e in started] == [
        ("run.started", BY_WRITER),
        ("run.step", _dispatched(run.id)),
    ]
    assert started[0].details["contacts"] == 4
    [dead] = [e for e in history if e.type == "run.step_dead_lettered"]
    assert (dead.contact_id, _who(dead)) == (letter.contact_id, _dispatched(run.id))


async def test_direct_connector_calls_name_the_caller(writer: tuple[App, Switchboard]) -> None:
    _, sb = writer
    await sb.connectors.invoke("fake", "echo", payload={"hello": "there"})
    [invoked] = await _stream(sb, "connector.invoked")
    assert invoked.schema_version == 2
    assert _who(invoked) == BY_WRITER
    assert invoked.details["connector"] == "fake"


async def test_scores_are_logged_with_their_values_and_caller(
    writer: tuple[App, Switchboard],
) -> None:
    _, sb = writer
    contact = (await sb.contacts.upsert(email="lead@example.com", job_title="CEO")).contact
    scored = await sb.leads.score(id=contact.id)
    await sb.leads.record_activity(id=contact.id, type="email_click")
    moved = await sb.leads.update_status(id=contact.id, status="mql", reason="demo")
    [logged] = await _stream(sb, "lead.scored")
    assert _who(logged) == BY_WRITER
    assert logged.lead_scored.lead == scored
    [recorded] = await _stream(sb, "lead.activity_recorded")
    assert recorded.activity_recorded.lead.activity_count == 1
    assert recorded.activity_recorded.lead.HasField("scored_at")
    [status] = await _stream(sb, "lead.status_changed")
    assert status.lead_status_changed.lead == moved.lead
    assert _who(status) == BY_WRITER


async def test_webhooks_name_their_source(start_app: StartApp) -> None:
    inbound = {
        "listen": "127.0.0.1:0",
        "sources": {
            "ats": {
                "secrets": ["whsec_" + base64.b64encode(WEBHOOK_KEY).decode()],
                "correlation_field": "application_id",
                "branch_field": "decision",
            }
        },
    }
    wait = {
        "source": "ats",
        "key": "attributes.application_id",
        "timeout_s": 3600,
        "timeout_branch": "expired",
        "branches": {"approved": [], "expired": []},
    }
    steps = [{"wait": wait}, {"connector": "fake", "action": "echo"}]
    app = await start_app(
        auth=AUTH,
        connectors={"fake": {"kind": "fake"}},
        triggers={"applied": {"steps": steps}},
        inbound=inbound,
    )
    async with Switchboard(f"127.0.0.1:{app.port}", api_key=WRITER, timeout=10.0) as sb:
        run = await sb.campaigns.trigger(
            "applied", email="cand@example.com", attributes={"application_id": "A-1"}
        )
        body = json.dumps({"application_id": "A-1", "decision": "approved"}).encode()
        stamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": "evt_1",
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(WEBHOOK_KEY, "evt_1", stamp, body),
        }
        assert app.inbound is not None
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"http://127.0.0.1:{app.inbound.port}/webhooks/ats", content=body, headers=headers
            )
        assert answer.json() == {"resumed": [run.id]}
        await _finished(sb, "applied", 1, run.contact_id)
        [received] = await _stream(sb, "inbound.received")
        steps_logged = [e for e in await _stream(sb, "run.step") if e.aggregate_id == run.id]
    assert _who(received) == ("webhook", "ats", "", "")
    # The wait ended in the webhook's request; the next step was the dispatcher's.
    assert [_who(e) for e in steps_logged] == [("webhook", "ats", "", ""), _dispatched(run.id)]


async def test_segment_campaign_runs_name_who_started_the_campaign(start_app: StartApp) -> None:
    pace = {"chunk": 2, "runs_per_s": 1000.0, "poll_interval_s": 0.1}
    app = await start_app(
        auth=AUTH,
        audience=pace,
        connectors={"fake": {"kind": "fake"}},
        triggers={"wave": {"steps": [{"connector": "fake", "action": "echo"}]}},
    )
    async with Switchboard(f"127.0.0.1:{app.port}", api_key=WRITER, timeout=10.0) as sb:
        for i in range(3):
            await sb.contacts.upsert(email=f"fr{i}@example.com", country="FR")
        await sb.segments.create("fr", 'country == "FR"')
        stub = campaigns_pb2_grpc.CampaignTriggersStub(sb.channel)
        md = (("authorization", f"Bearer {WRITER}"),)
        req = campaigns_pb2.TriggerCampaignRequest(event="wave", segment="fr")
        campaign = (await stub.TriggerCampaign(req, metadata=md)).campaign
        watch = campaigns_pb2.WatchCampaignRequest(id=campaign.id)
        [*_, final] = [r.campaign async for r in stub.WatchCampaign(watch, metadata=md, timeout=30)]
        assert final.status == campaigns_pb2.CAMPAIGN_STATUS_DONE
        runs = await _finished(sb, "wave", 3)
        started = [e for e in await _stream(sb, "run.started") if e.details["event"] == "wave"]
    assert campaign.started_by == "api_key:crm-sync"
    assert {r.started_by for r in runs} == {"api_key:crm-sync"}
    # Started in the background, for the caller who triggered the campaign.
    assert sorted(_who(e) for e in started) == sorted(_dispatched(r.id) for r in runs)
