"""Claiming outbox rows: per-connector budgets, blocked connectors, per-contact order."""

from __future__ import annotations

import pytest

from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import ClaimFilter, OutboxItem, WriteTx
from switchboard.server.store.select import AnyStore
from switchboard.v1 import campaigns_pb2

NOW = 1_000_000


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    """Each store kind (SQLite, PostgreSQL): the claim rules are the store contract's."""
    return any_store


async def _queue(store: AnyStore, rows: list[tuple[str, str, str]]) -> None:
    """Queue (run_id, contact_id, connector) rows in this order."""

    def work(tx: WriteTx) -> None:
        for i, (run_id, contact_id, connector) in enumerate(rows):
            run = campaigns_pb2.Run(id=run_id, event="e", contact_id=contact_id)
            if tx.run(run_id) is None:
                tx.put_run(run, Plan({}, ()))
            tx.enqueue_step(run_id, i, connector, f"{run_id}:{i}", NOW)

    await store.write(work)


async def _claim(store: AnyStore, flt: ClaimFilter, limit: int = 100) -> list[OutboxItem]:
    return await store.write(lambda tx: tx.claim_outbox(NOW, NOW + 10, limit, flt))


async def test_budgets_cap_each_connector_and_zero_blocks(store: AnyStore) -> None:
    await _queue(store, [(f"r{i}", f"c{i}", "a") for i in range(5)] + [("rb", "cb", "b")])
    await _queue(store, [("rz", "cz", "z")])
    claimed = await _claim(store, ClaimFilter(budgets={"a": 2, "b": 5, "z": 0}, default_budget=9))
    assert sorted(i.connector for i in claimed) == ["a", "a", "b"]


async def test_a_contacts_later_rows_wait_for_its_earlier_one(store: AnyStore) -> None:
    await _queue(
        store, [("r1", "c1", "a"), ("r2", "c1", "a"), ("r3", "c2", "a"), ("r4", "c1", "b")]
    )
    ordered = await _claim(store, ClaimFilter(budgets={}, default_budget=9))
    assert [i.run_id for i in ordered] == ["r1", "r3", "r4"]  # r2 waits behind r1 (same a)
    again = await _claim(store, ClaimFilter(budgets={}, default_budget=9))
    assert again == []  # r2 is still blocked while r1 is in flight


async def test_unordered_connectors_skip_the_wait(store: AnyStore) -> None:
    await _queue(store, [("r1", "c1", "a"), ("r2", "c1", "a")])
    flt = ClaimFilter(budgets={}, default_budget=9, unordered=frozenset({"a"}))
    assert [i.run_id for i in await _claim(store, flt)] == ["r1", "r2"]


async def test_a_claim_counts_its_attempt_durably(store: AnyStore) -> None:
    await _queue(store, [("r1", "c1", "a")])
    first = await _claim(store, ClaimFilter(budgets={}, default_budget=9))
    # The lease runs out with no outcome recorded, as after a crash mid-attempt.
    again = await store.write(lambda tx: tx.claim_outbox(NOW + 20, NOW + 30, 9))
    assert [i.attempts for i in first] == [0]  # attempts made before this claim
    assert [i.attempts for i in again] == [1]  # the interrupted attempt was counted
