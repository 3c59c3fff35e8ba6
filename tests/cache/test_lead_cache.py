"""GetLead and ScoreLead read the lead state through the cache, and never see it stale."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from switchboard.client import NotFoundError, Switchboard
from switchboard.server.app.build import App
from switchboard.server.common.timeutil import now_us
from switchboard.server.config.settings import defaults
from switchboard.server.rules.scoring import ScoreResult, ScoringEngine
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


class _CountedScoring:
    """Counts how often the scoring rules run (the server runs in this process)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs = 0
        real = ScoringEngine.score_us  # what ScoreLead runs

        def score(engine: ScoringEngine, *args: Any, **kwargs: Any) -> ScoreResult:
            self.runs += 1
            return real(engine, *args, **kwargs)

        monkeypatch.setattr(ScoringEngine, "score_us", score)


async def _steady(sb: Switchboard, cid: str) -> leads_pb2.Lead:
    """Score until the lead's inputs are cached and found steady: stored, then cached,
    then re-scored once from the cache."""
    await sb.leads.score(id=cid)  # stores the first score, drops the cached state
    await _settle()
    await sb.leads.score(id=cid)  # reads the state from the store and caches it
    return await sb.leads.score(id=cid)  # both inputs cached: the rules agree, remembered


async def test_a_steady_lead_is_answered_without_running_the_rules(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = _CountedScoring(monkeypatch)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        cid = (await sb.contacts.upsert(email="steady@example.com", company="Acme")).contact.id
        first = await _steady(sb, cid)
        runs = counted.runs
        again = [await sb.leads.score(id=cid) for _ in range(3)]
    assert runs == 3  # the counter sees the rules: each of the three calls above ran them
    assert counted.runs == runs  # answered from the remembered inputs
    assert all(lead.score == first.score and lead.grade == first.grade for lead in again)
    assert [r.rule for r in again[-1].reasons] == [r.rule for r in first.reasons]
    # Scored now, each time: the answer is the stored lead with a fresh time.
    times = [first.scored_at.ToMicroseconds()] + [x.scored_at.ToMicroseconds() for x in again]
    assert times == sorted(times)
    assert len(set(times)) == len(times)


async def test_a_changed_input_is_scored_again(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    counted = _CountedScoring(monkeypatch)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        cid = (await sb.contacts.upsert(email="changes@example.com")).contact.id
        base = await _steady(sb, cid)
        runs = counted.runs
        await sb.contacts.upsert(id=cid, company="Acme")  # company: 5 points
        assert (await sb.leads.score(id=cid)).score == base.score + 5
        assert counted.runs == runs + 1
        await sb.leads.update_status(id=cid, status="mql")
        await _steady(sb, cid)
        runs = counted.runs
        assert (await sb.leads.score(id=cid)).status == leads_pb2.LEAD_STATUS_MQL
        assert counted.runs == runs  # steady again, with its new status


async def test_a_lead_with_activities_is_scored_at_every_call(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = _CountedScoring(monkeypatch)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        cid = (await sb.contacts.upsert(email="active@example.com")).contact.id
        await sb.leads.record_activity(id=cid, type="demo_request")  # 20 points, decaying
        now = await _steady(sb, cid)
        runs = counted.runs
        assert (await sb.leads.score(id=cid)).score == now.score
        assert counted.runs == runs + 1  # its points decay: never answered from memory
        # Sixty days on (two half-lives) the demo request is worth 5 points, not 20.
        later = now_us() + 60 * 86_400_000_000
        monkeypatch.setattr("switchboard.server.domain.leads.now_us", lambda: later)
        assert (await sb.leads.score(id=cid)).score == now.score - 15
