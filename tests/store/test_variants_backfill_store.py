"""Variant results and backfill pages against every store (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from switchboard.server.config.sync import SyncDestinationSettings
from switchboard.server.rules.plan import Plan, PlanStep
from switchboard.server.runs.backfill import (
    ERASED_SKIP,
    backfill_step,
    position,
    queue_page,
    skip_pending_backfill,
)
from switchboard.server.store.base import ActivityRow, WriteTx
from switchboard.server.store.select import AnyStore
from switchboard.v1 import campaigns_pb2, contacts_pb2

S = 1_000_000  # microseconds in a second


def _variant_run(run_id: str, contact_id: str, variant: str, created_s: int) -> Any:
    run = campaigns_pb2.Run(id=run_id, event="welcome", contact_id=contact_id, variant=variant)
    run.created_at.seconds = created_s
    return run


async def test_variant_results_count_contacts_and_conversions_after_exposure(
    any_store: AnyStore,
) -> None:
    plan = Plan({}, (PlanStep("x", "echo"),))

    def write(tx: WriteTx) -> None:
        runs = [
            ("r1", "c1", "a", 100), ("r2", "c1", "a", 300),  # one contact, two runs
            ("r3", "c2", "a", 100), ("r4", "c3", "b", 100), ("r5", "c4", "b", 900),
        ]
        for run_id, contact, variant, created in runs:
            run = _variant_run(run_id, contact, variant, created)
            tx.put_run(run, plan)
            tx.put_run_variant(run)
        other = campaigns_pb2.Run(id="r6", event="other", contact_id="c2", variant="a")
        tx.put_run(other, plan)
        tx.put_run_variant(other)
        # c1 buys after its first run; c2 only before; c3 buys twice; c3 also opens.
        tx.add_activity("a1", "c1", ActivityRow("purchase", 150 * S, 5.0), b"")
        tx.add_activity("a2", "c2", ActivityRow("purchase", 50 * S, 5.0), b"")
        tx.add_activity("a3", "c3", ActivityRow("purchase", 200 * S, 5.0), b"")
        tx.add_activity("a4", "c3", ActivityRow("purchase", 300 * S, 5.0), b"")
        tx.add_activity("a5", "c4", ActivityRow("email_open", 950 * S, 0.0), b"")

    await any_store.write(write)
    everything = await any_store.read(
        lambda tx: tx.variant_results("welcome", 0, 10_000 * S, "purchase")
    )
    assert [(c.variant, c.exposures, c.conversions) for c in everything] == [
        ("a", 2, 1),
        ("b", 2, 1),
    ]
    early = await any_store.read(lambda tx: tx.variant_results("welcome", 0, 500 * S, "purchase"))
    assert [(c.variant, c.exposures, c.conversions) for c in early] == [("a", 2, 1), ("b", 1, 1)]
    opens = await any_store.read(
        lambda tx: tx.variant_results("welcome", 0, 10_000 * S, "email_open")
    )
    assert [(c.variant, c.conversions) for c in opens] == [("a", 0), ("b", 1)]


async def test_backfill_pages_resume_and_skip_the_erased(any_store: AnyStore) -> None:
    def contacts(tx: WriteTx) -> None:
        for i in range(5):
            contact = contacts_pb2.Contact(id=f"c{i}", email=f"p{i}@example.com")
            contact.updated_at.seconds = 10 + i
            tx.put_contact(contact, created=True)

    await any_store.write(contacts)
    step = backfill_step(SyncDestinationSettings(connector="dest"))
    first, runs = await any_store.write(lambda tx: queue_page(tx, step, 0, 2, 1))
    assert (first.queued, first.done, len(runs)) == (2, False, 2)
    stored = await any_store.read(lambda tx: position(tx, "dest"))
    assert stored == first
    # The next page starts from the stored position, whoever queued the last one.
    second, more = await any_store.write(lambda tx: queue_page(tx, step, 0, 10, 2))
    assert (second.queued, second.done, len(more)) == (5, True, 3)
    queued = await any_store.read(lambda tx: [tx.run(r) for r in runs + more])
    assert [r.contact_id for r in queued if r] == [f"c{i}" for i in range(5)]
    again, none = await any_store.write(lambda tx: queue_page(tx, step, 0, 10, 3))
    assert (again.queued, again.done, none) == (5, True, [])
    fresh, anew = await any_store.write(lambda tx: queue_page(tx, step, 0, 1, 3, restart=True))
    assert (fresh.queued, len(anew)) == (1, 1)

    await any_store.write(lambda tx: skip_pending_backfill(tx, "c3", 3))
    run = await any_store.read(lambda tx: tx.run(more[1]))
    assert run is not None
    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    assert run.steps[0].status == campaigns_pb2.STEP_STATUS_SKIPPED
    assert run.steps[0].skip_reason == ERASED_SKIP
    assert await any_store.read(lambda tx: tx.outbox_item(more[1], 0)) is None
    assert await any_store.read(lambda tx: tx.outbox_item(more[0], 0)) is not None
