"""ListRuns(status=FAILED): the failed runs in (created, id) order, newest first, with the
other filters and the cursor, and (SQLite) a page's cost independent of how many runs
did not fail."""

from __future__ import annotations

import pytest

from switchboard.server.store.base import RunFilter, WriteTx
from switchboard.server.store.select import AnyStore
from switchboard.v1 import campaigns_pb2
from tests.store.run_rows import finished_runs
from tests.store.vm_steps import vm_steps

FAILED = campaigns_pb2.RUN_STATUS_FAILED


async def test_failed_runs_come_newest_first_with_filters_and_cursor(any_store: AnyStore) -> None:
    await any_store.write(finished_runs(0, 300, 7))
    failed = [f"r{i:06d}" for i in range(299, -1, -1) if i % 7 == 0]

    got: list[str] = []
    cursor: tuple[int, str] | None = None
    while True:
        rows = await any_store.read(
            lambda tx, c=cursor: tx.list_runs(RunFilter(status=FAILED), c, 4)
        )
        got += [r.id for r in rows]
        if len(rows) < 4:
            break
        cursor = (rows[-1].created_at.seconds * 1_000_000, rows[-1].id)
    assert got == failed
    of_b = await any_store.read(
        lambda tx: tx.list_runs(RunFilter(event="b", status=FAILED), None, 100)
    )
    assert [r.id for r in of_b] == [i for i in failed if int(i[1:]) % 2 == 1]
    done = await any_store.read(
        lambda tx: tx.list_runs(RunFilter(status=campaigns_pb2.RUN_STATUS_SUCCEEDED), None, 3)
    )
    assert [r.id for r in done] == ["r000299", "r000298", "r000297"]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_page_of_failed_runs_does_not_walk_the_others(any_store: AnyStore) -> None:
    """It walked every run, newest first, to find the failed ones (10x the cost here)."""

    def cost(tx: WriteTx) -> int:
        steps, rows = vm_steps(tx, lambda: tx.list_runs(RunFilter(status=FAILED), None, 51))
        assert len(rows) == 10
        return steps

    await any_store.write(finished_runs(0, 10, 1))  # 10 failed runs, the oldest
    await any_store.write(finished_runs(10, 500, 0))
    few = int(await any_store.write(cost))
    await any_store.write(finished_runs(510, 4500, 0))
    many = int(await any_store.write(cost))
    assert many <= few * 1.5 + 5, (few, many)
