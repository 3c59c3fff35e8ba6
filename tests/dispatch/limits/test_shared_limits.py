"""The shared backends' rules, each run against the store and a real redis-server.

Two instances with different holders stand for two worker processes.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.dispatch.limits.conftest import MakeLimits, spec


async def test_bucket_hands_out_the_burst_then_spaces_calls_at_the_rate(
    make_limits: MakeLimits,
) -> None:
    limits = await make_limits({"c": spec(rate_per_s=10.0, burst=2)})
    assert (await limits.budgets()).counts["c"] == 2
    tickets = (await limits.take({"c": ["interactive"] * 4}))["c"]
    assert all(t.ok for t in tickets)
    delays = [t.delay_s for t in tickets]
    assert delays[:2] == [0.0, 0.0]
    assert delays[2] == pytest.approx(0.1, abs=0.02)  # one token per 100 ms after the burst
    assert delays[3] == pytest.approx(0.2, abs=0.02)
    budgets = await limits.budgets()
    assert budgets.counts["c"] == 0
    assert budgets.wake_in_s is not None
    assert 0.2 < budgets.wake_in_s <= 0.32


async def test_bucket_refills_with_time(make_limits: MakeLimits) -> None:
    limits = await make_limits({"c": spec(rate_per_s=20.0, burst=3)})
    await limits.take({"c": ["interactive"] * 3})
    assert (await limits.budgets()).counts["c"] == 0
    await asyncio.sleep(0.12)  # 2.4 tokens at 20/s
    assert (await limits.budgets()).counts["c"] == 2
    await asyncio.sleep(0.3)
    assert (await limits.budgets()).counts["c"] == 3  # never above the burst


async def test_two_processes_share_one_bucket(make_limits: MakeLimits) -> None:
    specs = {"c": spec(rate_per_s=10.0, burst=1)}
    a, b = await make_limits(specs, "a"), await make_limits(specs, "b")
    first = (await a.take({"c": ["interactive"]}))["c"][0]
    second = (await b.take({"c": ["interactive"]}))["c"][0]
    assert first.delay_s == 0.0
    assert second.delay_s == pytest.approx(0.1, abs=0.02)  # b waits for a's spent token


async def test_slots_are_shared_and_freed(make_limits: MakeLimits) -> None:
    specs = {"c": spec(max_concurrency=2)}
    a, b = await make_limits(specs, "a"), await make_limits(specs, "b")
    held = (await a.take({"c": ["interactive", "interactive"]}))["c"]
    assert (await b.budgets()).counts["c"] == 0
    refused = (await b.take({"c": ["interactive"]}))["c"][0]
    assert not refused.ok
    assert refused.reason == "no free concurrency slot"
    a.release("c", held[0])
    await a.flush()
    assert (await b.budgets()).counts["c"] == 1


async def test_a_dead_process_slots_come_free_when_its_lease_ends(make_limits: MakeLimits) -> None:
    specs = {"c": spec(max_concurrency=2)}
    crashed = await make_limits(specs, "crashed", lease_s=0.3)
    alive = await make_limits(specs, "alive", lease_s=0.3)
    await crashed.take({"c": ["interactive", "interactive"]})  # never released: it "died"
    assert (await alive.budgets()).counts["c"] == 0
    await asyncio.sleep(0.4)
    assert (await alive.budgets()).counts["c"] == 2


async def test_a_live_process_keeps_its_slots_by_claiming(make_limits: MakeLimits) -> None:
    specs = {"c": spec(max_concurrency=1)}
    holder = await make_limits(specs, "holder", lease_s=0.4)
    other = await make_limits(specs, "other", lease_s=0.4)
    await holder.take({"c": ["interactive"]})
    for _ in range(4):  # 0.6 s in all, past the lease, renewed by each look
        await asyncio.sleep(0.15)
        await holder.budgets()
    assert (await other.budgets()).counts["c"] == 0


async def test_breaker_opens_probes_once_and_closes(make_limits: MakeLimits) -> None:
    specs = {"c": spec(breaker_failures=2, breaker_cooldown_s=0.3)}
    a, b = await make_limits(specs, "a"), await make_limits(specs, "b")
    a.report("c", False, None)
    await a.flush()
    assert (await b.budgets()).counts["c"] > 1  # one failure: still closed
    b.report("c", False, None)  # the second in a row, from another process
    await b.flush()
    assert (await a.budgets()).counts["c"] == 0
    assert a.circuit("c") == "open"
    refused = (await a.take({"c": ["interactive"]}))["c"][0]
    assert not refused.ok
    assert refused.reason == "circuit open"
    assert refused.retry_in_s > 0
    await asyncio.sleep(0.35)
    assert (await a.budgets()).counts["c"] == 1  # half open: one probe
    probe, extra = (await a.take({"c": ["interactive", "interactive"]}))["c"]
    assert probe.ok
    assert probe.probe
    assert not extra.ok  # only one probe, across processes too
    assert not (await b.take({"c": ["interactive"]}))["c"][0].ok
    a.report("c", False, probe)  # the probe failed: open for a new cool-down
    await a.flush()
    assert (await b.budgets()).counts["c"] == 0
    await asyncio.sleep(0.35)
    probe = (await b.take({"c": ["interactive"]}))["c"][0]
    assert probe.probe
    b.report("c", True, probe)
    await b.flush()
    assert b.circuit("c") == "closed"
    assert (await a.budgets()).counts["c"] > 1


async def test_breaker_changes_are_logged_once(
    make_limits: MakeLimits, caplog: pytest.LogCaptureFixture
) -> None:
    limits = await make_limits({"c": spec(breaker_failures=1, breaker_cooldown_s=30)})
    for _ in range(3):
        limits.report("c", False, None)
    await limits.flush()
    opened = [r for r in caplog.records if "circuit for connector c is open" in r.getMessage()]
    assert len(opened) == 1


async def test_quota_keeps_the_interactive_reserve_from_bulk(make_limits: MakeLimits) -> None:
    # 10 a day, 20 % reserved: bulk may use 8, interactive all 10.
    specs = {"c": spec(daily_quota=10, interactive_share=0.2)}
    a, b = await make_limits(specs, "a"), await make_limits(specs, "b")
    bulk = (await a.take({"c": ["bulk"] * 5}))["c"] + (await b.take({"c": ["bulk"] * 5}))["c"]
    assert [t.ok for t in bulk] == [True] * 8 + [False] * 2
    assert "bulk lane" in bulk[-1].reason
    assert bulk[-1].retry_in_s > 0
    assert (await a.budgets()).counts["c"] == 2  # the interactive lane still has its reserve
    interactive = (await b.take({"c": ["interactive"] * 3}))["c"]
    assert [t.ok for t in interactive] == [True, True, False]
    assert "interactive lane" in interactive[-1].reason
    assert 0 < interactive[-1].retry_in_s <= 86400  # until the next UTC day


async def test_interactive_use_shrinks_what_bulk_may_take(make_limits: MakeLimits) -> None:
    limits = await make_limits({"c": spec(daily_quota=10, interactive_share=0.2)})
    await limits.take({"c": ["interactive"] * 7})
    bulk = (await limits.take({"c": ["bulk"] * 3}))["c"]
    assert [t.ok for t in bulk] == [True, False, False]  # 7 + 1 = 10 - 2 reserved
