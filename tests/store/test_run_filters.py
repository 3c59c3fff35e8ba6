"""ListRuns by event and by an open state (PENDING, RUNNING): the matching runs in (created,
id) order, newest first, with the other filters and the cursor; and (SQLite) a page's cost
independent of how many runs do not match."""

from __future__ import annotations

import pytest

from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import RunFilter, WriteTx
from switchboard.server.store.select import AnyStore
from switchboard.v1 import campaigns_pb2
from tests.store.run_rows import finished_runs, pending_runs, set_status
from tests.store.vm_steps import vm_steps

PENDING = campaigns_pb2.RUN_STATUS_PENDING
RUNNING = campaigns_pb2.RUN_STATUS_RUNNING
SUCCEEDED = campaigns_pb2.RUN_STATUS_SUCCEEDED
FAILED = campaigns_pb2.RUN_STATUS_FAILED


async def _all_pages(store: AnyStore, flt: RunFilter, size: int) -> list[str]:
    got: list[str] = []
    cursor: tuple[int, str] | None = None
    while True:
        rows = await store.read(lambda tx, c=cursor: tx.list_runs(flt, c, size))
        got += [r.id for r in rows]
        if len(rows) < size:
            return got
        cursor = (rows[-1].created_at.seconds * 1_000_000, rows[-1].id)


async def test_runs_by_event_and_open_state_come_newest_first(any_store: AnyStore) -> None:
    await any_store.write(finished_runs(0, 200, 0))  # events a/b alternate, all SUCCEEDED
    await any_store.write(pending_runs(200, 12, "rare"))
    rare = [f"r{i:06d}" for i in range(211, 199, -1)]
    running = rare[1::3]  # some of them move on; a finished one leaves the open states
    await any_store.write(set_status(running, RUNNING))
    await any_store.write(set_status([rare[0]], SUCCEEDED))
    pending = [i for i in rare if i not in running and i != rare[0]]

    assert await _all_pages(any_store, RunFilter(event="rare"), 5) == rare
    assert await _all_pages(any_store, RunFilter(status=PENDING), 3) == pending
    assert await _all_pages(any_store, RunFilter(status=RUNNING), 3) == running
    assert await _all_pages(any_store, RunFilter(event="rare", status=RUNNING), 2) == running
    assert await _all_pages(any_store, RunFilter(event="a", status=PENDING), 2) == []
    of_b = await _all_pages(any_store, RunFilter(event="b"), 7)
    assert of_b == [f"r{i:06d}" for i in range(199, -1, -2)]
    ended = await any_store.read(lambda tx: tx.list_runs(RunFilter(status=SUCCEEDED), None, 2))
    assert [r.id for r in ended] == [rare[0], "r000199"]


async def test_an_events_failed_runs_come_newest_first(any_store: AnyStore) -> None:
    await any_store.write(finished_runs(0, 60, 3))  # every third run FAILED, events a/b
    failed_b = [f"r{i:06d}" for i in range(57, -1, -6)]  # odd multiples of 3: event b
    assert await _all_pages(any_store, RunFilter(event="b", status=FAILED), 4) == failed_b
    cursor = (1019 * 1_000_000, "r000057")  # r000057 was created at 1000 + 57 // 3
    after = await any_store.read(
        lambda tx: tx.list_runs(RunFilter(event="b", status=FAILED), cursor, 3)
    )
    assert [r.id for r in after] == failed_b[1:4]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "flt",
    [RunFilter(event="rare"), RunFilter(status=PENDING), RunFilter(status=RUNNING)],
    ids=["event", "pending", "running"],
)
async def test_a_page_of_rare_runs_does_not_walk_the_others(
    any_store: AnyStore, flt: RunFilter
) -> None:
    """Each walked every run, newest first, to find the matching ones (10x the cost here)."""
    await any_store.write(pending_runs(0, 10, "rare"))  # the oldest runs, 10 of them
    if flt.status == RUNNING:
        await any_store.write(set_status([f"r{i:06d}" for i in range(10)], RUNNING))

    def cost(tx: WriteTx) -> int:
        steps, rows = vm_steps(tx, lambda: tx.list_runs(flt, None, 51))
        assert len(rows) == 10
        return steps

    await any_store.write(finished_runs(10, 500, 0))
    few = int(await any_store.write(cost))
    await any_store.write(finished_runs(510, 4500, 0))
    many = int(await any_store.write(cost))
    assert many <= few * 1.5 + 5, (few, many)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("state", [FAILED, PENDING, RUNNING], ids=["failed", "pending", "running"])
async def test_a_page_of_a_common_events_rare_state_does_not_walk_its_history(
    any_store: AnyStore, state: int
) -> None:
    """Each walked every run of the event (`runs_event`), newest first, to find the few in
    the state (10x the cost here)."""
    if state == FAILED:
        await any_store.write(finished_runs(0, 20, 1))  # 10 of event a, 10 of b, all FAILED
    else:
        await any_store.write(pending_runs(0, 10, "a"))
        if state == RUNNING:
            await any_store.write(set_status([f"r{i:06d}" for i in range(10)], RUNNING))
    flt = RunFilter(event="a", status=state)

    def cost(tx: WriteTx) -> int:
        steps, rows = vm_steps(tx, lambda: tx.list_runs(flt, None, 51))
        assert len(rows) == 10
        return steps

    await any_store.write(finished_runs(20, 500, 0))  # a and b in turn, SUCCEEDED
    few = int(await any_store.write(cost))
    await any_store.write(finished_runs(520, 4500, 0))
    many = int(await any_store.write(cost))
    assert many <= few * 1.5 + 5, (few, many)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_contacts_runs_include_the_chunk_runs_that_carried_it(
    any_store: AnyStore,
) -> None:
    """PostgreSQL finds chunk runs through `run_contacts` (SQLite through the events)."""
    await any_store.write(finished_runs(0, 30, 0))  # contact "c", events a/b

    def chunk(tx: WriteTx) -> None:
        # A chunk run names no contact of its own; it carried "c" and "d".
        run = campaigns_pb2.Run(id="r000030", event="contact.changed", status=PENDING)
        run.created_at.seconds = 1010
        tx.put_run(run, Plan({}, ()))
        tx.add_run_contacts("r000030", ["c", "d"])

    await any_store.write(chunk)
    of_c = await _all_pages(any_store, RunFilter(contact_id="c"), 7)
    assert of_c == [f"r{i:06d}" for i in range(30, -1, -1)]
    assert await _all_pages(any_store, RunFilter(contact_id="d"), 7) == ["r000030"]
    assert await _all_pages(any_store, RunFilter(contact_id="c", event="a"), 4) == [
        f"r{i:06d}" for i in range(28, -1, -2)
    ]
    assert await _all_pages(any_store, RunFilter(contact_id="e"), 7) == []
