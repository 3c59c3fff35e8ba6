"""Erasure audit: an erased person appears nowhere a reader can look, and counts stay right.

One person with everything the server keeps about people (activities, purchases, consents,
a lead with a status reason, runs whose steps answered with their data, segment
membership) is erased among others. Then every reading path is searched for their values:
Events.StreamEvents (with and without redacted events), Events.GetContactHistory,
`switchboard events export` (JSON Lines and CSV), ListSegmentMembers and
`switchboard segments export`, the raw event rows, and the read models after
Admin.RebuildReadModels. The others' segment counts and the log's shape (events per type)
must not change.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import json_format

from switchboard.client import Switchboard
from switchboard.client.cli import main
from switchboard.server.app.build import App
from switchboard.v1 import admin_pb2, admin_pb2_grpc, events_pb2, events_pb2_grpc

StartApp = Callable[..., Awaitable[App]]
# Values only the erased person has: none may be found anywhere after erasure.
SECRETS = (
    "erin.qx@example.com",
    "Erinqx",
    "Zyphqar",
    "+33612349876",
    "plan-zx91",
    "sku-erin-77",
    "erin-form-qx",
    "erin asked for a qx demo",
)
SEGMENTS = {
    "fr": 'country == "FR"',
    "vip": '"vip" in lists',
    "buyers": "purchases_total > 0",
    "mql": 'lead_status == "MQL"',
}
READ_MODELS = ("contacts", "contact_lists", "activities", "leads", "segment_facts")
# Runs are kept for the audit trail: they name the person's id, never their values.
TABLES = (*READ_MODELS, "runs")


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s.lower() in text.lower()]


async def _seed(sb: Switchboard) -> dict[str, str]:
    ids: dict[str, str] = {}
    people = (
        ("ann@example.com", {"first_name": "Ann", "country": "FR", "lists": ["vip"]}),
        ("bob@example.com", {"first_name": "Bob", "country": "DE", "lists": ["vip"]}),
        (
            SECRETS[0],
            {
                "first_name": SECRETS[1],
                "last_name": SECRETS[2],
                "phone": SECRETS[3],
                "country": "FR",
                "lists": ["vip"],
                "attributes": {"plan": SECRETS[4]},
                "consents": {"sms_marketing": True},
                "consent": True,
                "consent_source": SECRETS[6],
            },
        ),
    )
    for email, fields in people:
        ids[email] = (await sb.contacts.upsert(email=email, **fields)).contact.id
    now = datetime.now(UTC)
    for email in ids:
        await sb.leads.record_activity(
            id=ids[email],
            type="purchase",
            value=20.0,
            occurred_at=now - timedelta(days=1),
            attributes={"sku": SECRETS[5] if email == SECRETS[0] else "sku-common"},
        )
        await sb.leads.record_activity(id=ids[email], type="email_click")
        await sb.leads.score(id=ids[email])
        # A run whose step answers with the person's data (the fake echoes its payload).
        await sb.campaigns.trigger("demo.ping", contact_id=ids[email], wait=True)
    await sb.leads.update_status(id=ids[SECRETS[0]], status="mql", reason=SECRETS[7])
    await sb.leads.update_status(id=ids["ann@example.com"], status="mql", reason="ann: demo")
    return ids


async def _events(sb: Switchboard, include_redacted: bool) -> tuple[list[events_pb2.Event], int]:
    events: list[events_pb2.Event] = []
    skipped = 0
    async for reply in sb.events.stream(
        stop_at_head=True, include_redacted=include_redacted, timeout=30
    ):
        events.extend(reply.events)
        skipped += reply.redacted_skipped
    return events, skipped


def _text(messages: list[Any]) -> str:
    return "\n".join(json_format.MessageToJson(m) for m in messages)


async def _cli(target: str, *args: str) -> str:
    """`switchboard ARGS…` in process (on a thread: the CLI runs its own event loop)."""
    runner = CliRunner(env={"SWITCHBOARD_TARGET": target})
    result = await asyncio.to_thread(runner.invoke, main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


async def _counts(sb: Switchboard) -> dict[str, int]:
    return {name: await sb.segments.count(name) for name in SEGMENTS}


async def _tables(app: App, tables: tuple[str, ...] = TABLES) -> str:
    def read(tx: Any) -> str:
        rows = [repr(r) for t in tables for r in tx._rows(f"SELECT * FROM {t}")]
        # Blobs are protobuf: their strings are stored as plain UTF-8, so a repr shows them.
        return "\n".join(rows)

    return await app.store.read(read)


async def _raw_events(app: App) -> bytes:
    rows = await app.store.read(lambda tx: tx._rows("SELECT payload FROM events"))
    return b"\n".join(bytes(r[0]) for r in rows)


async def test_an_erased_person_appears_nowhere_and_counts_stay_right(
    start_app: StartApp,
) -> None:
    app = await start_app(
        connectors={"fake": {"kind": "fake"}},
        triggers={"demo.ping": {"steps": [{"connector": "fake", "action": "echo"}]}},
    )
    target = f"127.0.0.1:{app.port}"
    async with Switchboard(target, timeout=30.0) as sb:
        for name, expression in SEGMENTS.items():
            await sb.segments.create(name, expression)
        ids = await _seed(sb)
        erin = ids[SECRETS[0]]
        before_counts = await _counts(sb)
        before, _ = await _events(sb, include_redacted=True)
        head = before[-1].cursor
        # The search can find them: before erasure the values are there.
        assert set(_leaks(_text(before))) == set(SECRETS)
        assert set(_leaks(await _tables(app))) >= set(SECRETS[:6])

        await sb.contacts.delete(id=erin)

        # Events.StreamEvents: skipped or redacted, never readable; the shape unchanged.
        sent, skipped = await _events(sb, include_redacted=False)
        redacted, none_skipped = await _events(sb, include_redacted=True)
        assert _leaks(_text(sent)) == []
        assert _leaks(_text(redacted)) == []
        assert none_skipped == 0
        old = [e for e in redacted if e.cursor <= head]
        assert Counter(e.type for e in old) == Counter(e.type for e in before)
        assert [e.cursor for e in old] == [e.cursor for e in before]
        assert len([e for e in sent if e.cursor <= head]) + skipped >= len(before)
        # Each event that held their values is now redacted (the others were never personal).
        personal = {e.cursor for e in before if _leaks(_text([e]))}
        held = {e.type for e in before if e.cursor in personal}
        assert held >= {"contact.created", "lead.activity_recorded", "lead.status_changed"}
        assert personal <= {e.cursor for e in old if e.redacted}
        assert {e.contact_id for e in old if e.redacted} == {erin}
        # What is not about the person stays: purchase amounts, lead statuses.
        amounts = [
            e.activity_recorded.activity.value
            for e in old
            if e.contact_id == erin and e.type == "lead.activity_recorded"
        ]
        assert sorted(amounts) == [0.0, 20.0]
        # The raw rows too (only sealed bytes may hold the person's values).
        assert _leaks((await _raw_events(app)).decode("utf-8", "replace")) == []

        # Events.GetContactHistory: the erased person is gone; the others hold nothing of theirs.
        history = events_pb2_grpc.EventsStub(sb.channel).GetContactHistory
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await history(events_pb2.GetContactHistoryRequest(contact_id=erin))
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        for email in ("ann@example.com", "bob@example.com"):
            req = events_pb2.GetContactHistoryRequest(contact_id=ids[email], page_size=1000)
            page = await history(req)
            assert page.events
            assert _leaks(_text(list(page.events))) == []

        # `switchboard events export`, JSON Lines and CSV, with and without redacted events.
        for fmt in ("jsonl", "csv"):
            for extra in ((), ("--include-redacted",)):
                out = await _cli(target, "events", "export", "--format", fmt, *extra)
                assert out.count("\n") > len(before) // 2
                assert _leaks(out) == [], (fmt, extra)
        jsonl = await _cli(target, "events", "export", "--include-redacted")
        assert len(jsonl.splitlines()) == len(redacted)
        assert all(json.loads(line)["cursor"] for line in jsonl.splitlines())

        # Segments: members, exports and counts.
        after_counts = await _counts(sb)
        assert after_counts == {
            "fr": before_counts["fr"] - 1,
            "vip": before_counts["vip"] - 1,
            "buyers": before_counts["buyers"] - 1,
            "mql": before_counts["mql"] - 1,
        }
        assert after_counts == {"fr": 1, "vip": 2, "buyers": 2, "mql": 1}
        for name in SEGMENTS:
            members = [c async for c in sb.segments.members(name)]
            assert erin not in {c.id for c in members}
            assert _leaks(_text(members)) == []
            for fmt in ("jsonl", "csv"):
                assert _leaks(await _cli(target, "segments", "export", name, "--format", fmt)) == []

        # Admin.RebuildReadModels: the replay resurrects no one, and counts stay.
        stub = admin_pb2_grpc.AdminStub(sb.channel)
        call = stub.RebuildReadModels(admin_pb2.RebuildReadModelsRequest(), timeout=60)
        progress = [m async for m in call]
        assert progress[-1].done
        assert (progress[-1].contacts, progress[-1].leads) == (2, 2)
        assert _leaks(await _tables(app)) == []
        assert erin not in await _tables(app, READ_MODELS)
        assert await _counts(sb) == after_counts
        with pytest.raises(grpc.aio.AioRpcError) as still_gone:
            await history(events_pb2.GetContactHistoryRequest(contact_id=erin))
        assert still_gone.value.code() == grpc.StatusCode.NOT_FOUND
