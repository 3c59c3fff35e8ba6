"""GetLead and ScoreLead read the lead state through the cache, and never see it stale."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from switchboard.client import NotFoundError, Switchboard
from switchboard.server.app.build import App
from switchboard.server.config.settings import defaults
from switchboard.v1 import leads_pb2

StartApp = Callable[..., Awaitable[App]]
HOLD_S = 0.02  # cache.invalidation_hold_s


@pytest.fixture
async def app(start_app: StartApp) -> App:
    return await start_app(cache={**defaults()["cache"], "invalidation_hold_s": HOLD_S})


async def _settle() -> None:
    await asyncio.sleep(HOLD_S * 3)  # past the last write's invalidation hold


async def test_repeated_reads_are_cache_hits(app: App) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        cid = (await sb.contacts.upsert(email="hits@example.com", company="Acme")).contact.id
        first = await sb.leads.score(id=cid)  # stores the first score
        await _settle()
        await sb.leads.get(id=cid)  # misses, then caches the contact and the lead state
        before = app.cache.stats()
        for _ in range(3):
            assert (await sb.leads.get(id=cid)).score == first.score
            assert (await sb.leads.score(id=cid)).score == first.score
        after = app.cache.stats()
    # each call looks up the contact and the lead state: 6 calls, 12 hits, no miss
    assert (after.hits - before.hits, after.misses - before.misses) == (12, 0)


async def test_an_activity_is_seen_by_the_next_read(app: App) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        cid = (await sb.contacts.upsert(email="fresh@example.com")).contact.id
        base = await sb.leads.score(id=cid)
        await _settle()
        assert (await sb.leads.get(id=cid)).activity_count == 0  # now cached
        await sb.leads.record_activity(id=cid, type="demo_request")
        got = await sb.leads.get(id=cid)
        assert got.activity_count == 1
        assert got.score == base.score + 20  # demo_request: 20 points
        await _settle()
        assert (await sb.leads.score(id=cid)).activity_count == 1  # cached again
        await sb.leads.record_activity(id=cid, type="form_submit")
        rescored = await sb.leads.score(id=cid)
        assert (rescored.activity_count, rescored.score) == (2, base.score + 30)


async def test_a_status_change_is_seen_by_the_next_read(app: App) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        cid = (await sb.contacts.upsert(email="status@example.com")).contact.id
        await sb.leads.score(id=cid)
        await _settle()
        assert (await sb.leads.get(id=cid)).status == leads_pb2.LEAD_STATUS_NEW
        await sb.leads.update_status(id=cid, status="mql")
        assert (await sb.leads.get(id=cid)).status == leads_pb2.LEAD_STATUS_MQL
        assert (await sb.leads.score(id=cid)).status == leads_pb2.LEAD_STATUS_MQL


async def test_a_profile_change_is_scored_at_once(app: App) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        cid = (await sb.contacts.upsert(email="profile@example.com")).contact.id
        base = await sb.leads.score(id=cid)
        await _settle()
        await sb.leads.score(id=cid)  # contact and lead state cached
        await sb.contacts.upsert(id=cid, company="Acme")  # company: 5 points
        assert (await sb.leads.score(id=cid)).score == base.score + 5


async def test_an_erased_contact_has_no_lead(app: App) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        cid = (await sb.contacts.upsert(email="gone@example.com")).contact.id
        await sb.leads.record_activity(id=cid, type="email_click")
        await _settle()
        await sb.leads.get(id=cid)  # cached
        await sb.contacts.delete(id=cid)
        with pytest.raises(NotFoundError):
            await sb.leads.get(id=cid)
        with pytest.raises(NotFoundError):
            await sb.leads.score(id=cid)
