"""RebuildReadModels through real gRPC calls, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.auth.api_keys import generate_key, hash_key
from switchboard.server.common.timeutil import now_us
from switchboard.server.store.event_log import append_details
from switchboard.v1 import admin_pb2, admin_pb2_grpc, segments_pb2, segments_pb2_grpc
from switchboard.v1.contacts_pb2 import Contact
from switchboard.v1.leads_pb2 import LEAD_STATUS_MQL, LEAD_STATUS_NEW, LEAD_STATUS_SQL, Lead

StartApp = Callable[..., Awaitable[App]]
_TABLES = {
    "contacts": "SELECT id, email, updated_us, data FROM contacts ORDER BY id",
    "lists": "SELECT list, contact_id FROM contact_lists ORDER BY list, contact_id",
    "activities": "SELECT id, contact_id, type, occurred_us, value, attributes FROM activities "
    "ORDER BY id",
    "facts": "SELECT * FROM segment_facts ORDER BY contact_id",
    "days": "SELECT contact_id, day, purchases, amount FROM activity_days ORDER BY contact_id, day",
    "leads": "SELECT contact_id, data FROM leads ORDER BY contact_id",
}
_SEGMENTS = {
    "fr_buyers": 'purchases_90d > 2 && country == "FR"',
    "vip": '"vip" in lists',
    "carts": "cart_without_order",
    "mql": 'lead_status == "MQL"',
    "spenders": "amount_365d >= 40.0",
}


async def _seed(sb: Switchboard) -> dict[str, str]:
    """Upserts, updates, activities, a lead move and an erasure."""
    ids: dict[str, str] = {}
    for name, country, lists in (
        ("ann", "FR", ["vip", "news"]),
        ("bob", "DE", ["news"]),
        ("cy", "FR", []),
        ("gone", "FR", ["vip"]),
    ):
        resp = await sb.contacts.upsert(
            email=f"{name}@example.com", country=country, lists=lists, attributes={"n": name}
        )
        ids[name] = resp.contact.id
    await sb.contacts.upsert(email="bob@example.com", lists=["vip"], attributes={"plan": "pro"})
    await sb.contacts.upsert(email="cy@example.com", country="ES")
    now = datetime.now(UTC)
    for name, count in (("ann", 4), ("bob", 2), ("gone", 5)):
        for n in range(count):
            await sb.leads.record_activity(
                id=ids[name],
                type="purchase",
                value=10.0 + n,
                occurred_at=now - timedelta(days=n * 20),
                attributes={"sku": f"{name}-{n}"},
            )
    await sb.leads.record_activity(id=ids["cy"], type="add_to_cart")
    await sb.leads.update_status(id=ids["ann"], status="mql", reason="asked for a demo")
    await sb.leads.score(id=ids["bob"])
    await sb.contacts.upsert(email="dee@example.com", job_title="CTO")
    ids["dee"] = (await sb.leads.score(email="dee@example.com")).contact_id  # scored only
    await sb.contacts.delete(id=ids["gone"])
    return ids


async def _snapshot(app: App) -> dict[str, list[tuple[Any, ...]]]:
    def read(tx: Any) -> dict[str, list[tuple[Any, ...]]]:
        out = {name: [tuple(r) for r in tx._rows(sql)] for name, sql in _TABLES.items()}
        # Messages compared as messages: a map's serialized order is not fixed.
        out["contacts"] = [(*r[:3], Contact.FromString(r[3])) for r in out["contacts"]]
        out["activities"] = [(*r[:5], Struct.FromString(r[5])) for r in out["activities"]]
        out["leads"] = [(r[0], Lead.FromString(r[1])) for r in out["leads"]]
        return out

    return await app.store.read(read)


async def _counts(ch: grpc.aio.Channel) -> dict[str, int]:
    stub = segments_pb2_grpc.SegmentsStub(ch)
    out: dict[str, int] = {}
    for name in _SEGMENTS:
        resp = await stub.CountSegment(segments_pb2.CountSegmentRequest(name=name))
        out[name] = resp.count
    return out


async def _rebuild(ch: grpc.aio.Channel, **kw: Any) -> list[admin_pb2.RebuildReadModelsResponse]:
    stub = admin_pb2_grpc.AdminStub(ch)
    call = stub.RebuildReadModels(admin_pb2.RebuildReadModelsRequest(), timeout=60, **kw)
    return [m async for m in call]


async def _damage(app: App, ids: dict[str, str]) -> None:
    """Break the read models the way a bug or a lost write would."""

    def work(tx: Any) -> None:
        tx._rows("DELETE FROM contacts WHERE id = ?", (ids["ann"],))
        tx._rows("DELETE FROM contact_lists WHERE contact_id = ?", (ids["bob"],))
        tx._rows("DELETE FROM activities WHERE contact_id = ?", (ids["ann"],))
        tx._rows("UPDATE segment_facts SET purchases_90d = 99, country = 'XX'")
        tx._rows("DELETE FROM leads WHERE contact_id = ?", (ids["dee"],))
        lead = tx.lead(ids["ann"])
        lead.score, lead.status = 3, LEAD_STATUS_NEW  # the "mql" segment loses ann
        tx.put_lead(lead)

    await app.store.write(work)


async def test_rebuild_equals_the_live_models(
    start_app: StartApp, database: dict[str, Any]
) -> None:
    app = await start_app(database=database)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        ids = await _seed(sb)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = segments_pb2_grpc.SegmentsStub(ch)
        for name, expr in _SEGMENTS.items():
            await stub.CreateSegment(
                segments_pb2.CreateSegmentRequest(
                    segment=segments_pb2.Segment(name=name, expression=expr)
                )
            )
        live, live_counts = await _snapshot(app), await _counts(ch)
        await _damage(app, ids)
        assert await _snapshot(app) != live
        progress = await _rebuild(ch)
        rebuilt, rebuilt_counts = await _snapshot(app), await _counts(ch)
    last = progress[-1]
    assert last.done
    assert [m.done for m in progress[:-1]] == [False] * (len(progress) - 1)
    last_seq = await app.store.read(lambda tx: tx.last_event_seq())
    assert last.cursor == last_seq
    # PostgreSQL's sequence may skip numbers (a rolled-back append): count the rows.
    total = await app.store.read(lambda tx: tx._rows("SELECT count(*) FROM events")[0][0])
    assert last.events_read == total
    assert last.events_per_second > 0
    assert (last.contacts, last.activities, last.list_memberships) == (4, 7, 4)
    assert last.legacy_contacts_kept == 0
    assert (last.leads, last.leads_kept) == (4, 0)  # every stored score is in the log
    assert last.redacted_events > 0  # the erased person's creation, activities...
    assert live_counts == {"fr_buyers": 1, "vip": 2, "carts": 1, "mql": 1, "spenders": 1}
    assert rebuilt_counts == live_counts
    for table, rows in live.items():
        assert rebuilt[table] == rows, table
    # The erased person stays gone.
    gone = ids["gone"]
    assert all(gone not in repr(row) for rows in rebuilt.values() for row in rows)


async def test_interrupted_rebuild_leaves_the_old_models(start_app: StartApp) -> None:
    app = await start_app()
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        ids = await _seed(sb)

    def filler(tx: Any) -> None:
        # Enough events that the replay takes many chunks: the cancel lands before the swap.
        at = now_us()
        for n in range(60_000):
            append_details(tx, "test.filler", f"f{n}", at, {"n": n})

    await app.store.write(filler)
    await _damage(app, ids)
    damaged = await _snapshot(app)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = admin_pb2_grpc.AdminStub(ch)
        call = stub.RebuildReadModels(admin_pb2.RebuildReadModelsRequest(), timeout=60)
        first = await call.read()
        assert isinstance(first, admin_pb2.RebuildReadModelsResponse)
        assert not first.done
        call.cancel()
        # Longer than the whole replay would take: a swap would have happened by now.
        await asyncio.sleep(3.0)
        assert await _snapshot(app) == damaged
        progress = await _rebuild(ch)
    assert progress[-1].done
    assert await _snapshot(app) != damaged


async def test_dry_run_counts_without_swapping(app: App, channel: grpc.aio.Channel) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        ids = await _seed(sb)
    await _damage(app, ids)
    damaged = await _snapshot(app)
    stub = admin_pb2_grpc.AdminStub(channel)
    call = stub.RebuildReadModels(admin_pb2.RebuildReadModelsRequest(dry_run=True), timeout=60)
    progress = [m async for m in call]
    assert progress[-1].done
    assert progress[-1].contacts == 4
    assert await _snapshot(app) == damaged


async def test_rebuild_needs_the_admin_scope(start_app: StartApp) -> None:
    reader, admin = generate_key(), generate_key()
    callers = {
        "reader": {"scopes": ["contacts:read", "segments:read"], "key_sha256": [hash_key(reader)]},
        "ops": {"scopes": ["admin"], "key_sha256": [hash_key(admin)]},
    }
    app = await start_app(auth={"enabled": True, "callers": callers})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _rebuild(ch, metadata=(("authorization", f"Bearer {reader}"),))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "admin" in (err.value.details() or "")
        progress = await _rebuild(ch, metadata=(("authorization", f"Bearer {admin}"),))
    assert progress[-1].done


async def test_schema_1_history_keeps_the_current_row(app: App, channel: grpc.aio.Channel) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        ids = await _seed(sb)
        old = await sb.contacts.upsert(email="old@example.com", country="IT")
    old_id = old.contact.id

    def legacy(tx: Any) -> None:
        # As a server from before the envelope wrote it: ids and field names, no values.
        tx._rows(
            "INSERT INTO events (type, aggregate_id, contact_id, at_us, version, payload) "
            "VALUES ('contact.updated', ?, '', ?, 1, ?)",
            (old_id, now_us(), b'{"fields": ["country"]}'),
        )
        contact = tx.contact_by_id(old_id)
        contact.email = "kept@example.com"
        tx._rows(
            "UPDATE contacts SET email = ?, data = ? WHERE id = ?",
            (contact.email, contact.SerializeToString(), old_id),
        )

    await app.store.write(legacy)
    progress = await _rebuild(channel)
    assert progress[-1].legacy_contacts_kept == 1
    rows = await app.store.read(lambda tx: tx._rows("SELECT id, email FROM contacts"))
    emails = {r[0]: r[1] for r in rows}
    assert emails[old_id] == "kept@example.com"  # the current row, not the log's version
    assert emails[ids["ann"]] == "ann@example.com"
    assert ids["gone"] not in emails


async def test_leads_stored_before_scores_were_logged_are_kept(
    app: App, channel: grpc.aio.Channel
) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        ids = await _seed(sb)
        old = (await sb.contacts.upsert(email="old@example.com")).contact

    def unlogged(tx: Any) -> None:
        # As a server from before scores were logged stored it: a lead row, no event.
        tx.put_lead(Lead(contact_id=old.id, score=42, grade=2, status=LEAD_STATUS_SQL))

    await app.store.write(unlogged)
    await _damage(app, ids)
    progress = await _rebuild(channel)
    assert (progress[-1].leads, progress[-1].leads_kept) == (5, 1)
    rows = await app.store.read(lambda tx: tx._rows("SELECT contact_id, data FROM leads"))
    leads = {r[0]: Lead.FromString(r[1]) for r in rows}
    assert (leads[old.id].score, leads[old.id].status) == (42, LEAD_STATUS_SQL)
    assert leads[ids["ann"]].status == LEAD_STATUS_MQL  # again, from the log
    assert ids["dee"] in leads
    assert ids["gone"] not in leads
