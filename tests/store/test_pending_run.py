"""`pending_run`: the run a sync change coalesces with, found through an index."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import WriteTx
from switchboard.server.store.select import AnyStore
from switchboard.v1 import campaigns_pb2
from tests.store.vm_steps import vm_steps

RunStatus = campaigns_pb2.RunStatus
PENDING = RunStatus.RUN_STATUS_PENDING
EMPTY = Plan({}, ())


def _run(run_id: str, contact_id: str, created_s: int, status: Any = PENDING) -> Any:
    run = campaigns_pb2.Run(id=run_id, event="e", contact_id=contact_id, status=status)
    run.created_at.seconds = created_s
    return run


def _queued(tx: WriteTx, run: Any) -> None:
    tx.put_run(run, EMPTY)
    tx.enqueue_step(run.id, 0, "crm", f"{run.id}:0", 0)


async def test_the_newest_unclaimed_pending_run_covering_the_contact(any_store: AnyStore) -> None:
    def put(tx: WriteTx) -> None:
        _queued(tx, _run("own-old", "c1", 1))
        tx.put_run(_run("own-done", "c1", 2, RunStatus.RUN_STATUS_SUCCEEDED), EMPTY)
        _queued(tx, _run("chunk", "", 3))  # a chunk run names its contacts apart
        tx.add_run_contacts("chunk", ["c1", "c2"])
        other_event = _run("other-event", "c1", 4)
        other_event.event = "f"
        _queued(tx, other_event)
        _queued(tx, _run("someone-else", "c3", 5))

    await any_store.write(put)

    async def found(contact_id: str) -> str | None:
        run = await any_store.read(lambda tx: tx.pending_run(contact_id, "e"))
        return run.id if run is not None else None

    assert await found("c1") == "chunk"
    assert await found("c2") == "chunk"
    assert await found("c3") == "someone-else"
    assert await found("nobody") is None

    def attempt(tx: WriteTx) -> None:
        item = tx.outbox_item("chunk", 0)
        assert item is not None
        tx.retry_outbox(item.id, 1, 0)

    # Claimed once: a tool may have seen its key, and an older run is not to be used either.
    await any_store.write(attempt)
    assert await found("c1") is None
    assert await found("c2") is None
    await any_store.write(lambda tx: tx.put_run(_run("chunk", "", 3, RunStatus.RUN_STATUS_RUNNING)))
    assert await found("c1") == "own-old"


def _instructions(tx: WriteTx, contact_id: str) -> int:
    """SQLite VM instructions (in hundreds) that `pending_run` takes for `contact_id`."""
    return vm_steps(tx, lambda: tx.pending_run(contact_id, "e"))[0]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_look_up_does_not_walk_the_contacts_finished_runs(any_store: AnyStore) -> None:
    # A contact written often (an interactive UpsertContact per visit) gathers thousands of
    # finished sync runs; only its PENDING ones are indexed for this look-up.
    def fill(tx: WriteTx, start: int, count: int) -> None:
        for i in range(start, start + count):
            tx.put_run(_run(f"r{i:06d}", "c1", 10 + i, RunStatus.RUN_STATUS_SUCCEEDED), EMPTY)

    await any_store.write(lambda tx: _queued(tx, _run("mine", "c1", 1)))
    await any_store.write(lambda tx: fill(tx, 0, 300))
    small = await any_store.write(lambda tx: _instructions(tx, "c1"))
    await any_store.write(lambda tx: fill(tx, 300, 3000))
    large = await any_store.write(lambda tx: _instructions(tx, "c1"))
    found = await any_store.read(lambda tx: tx.pending_run("c1", "e"))
    assert found is not None
    assert found.id == "mine"
    assert large <= small + 2, (small, large)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_look_up_does_not_walk_the_chunk_runs_a_contact_was_in(
    any_store: AnyStore,
) -> None:
    # An import of the same people again and again puts each of them in one more chunk run
    # every time; walking those made each coalesce slower until a steady load tipped over.
    def fill(tx: WriteTx, start: int, count: int) -> None:
        for i in range(start, start + count):
            run = _run(f"k{i:06d}", "", 10 + i)
            tx.put_run(run, EMPTY)
            tx.add_run_contacts(run.id, ["c1", f"other-{i}"])
            run.status = RunStatus.RUN_STATUS_SUCCEEDED
            tx.put_run(run)

    def chunk(tx: WriteTx) -> None:
        _queued(tx, _run("pending-chunk", "", 5))
        tx.add_run_contacts("pending-chunk", ["c1"])

    await any_store.write(chunk)
    await any_store.write(lambda tx: fill(tx, 0, 100))
    small = await any_store.write(lambda tx: _instructions(tx, "c1"))
    await any_store.write(lambda tx: fill(tx, 100, 2000))
    large = await any_store.write(lambda tx: _instructions(tx, "c1"))
    found = await any_store.read(lambda tx: tx.pending_run("c1", "e"))
    assert found is not None
    assert found.id == "pending-chunk"
    assert large <= small + 2, (small, large)
