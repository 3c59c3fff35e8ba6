"""Group commit: what each caller of `SqliteStore.write` is promised."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.store.base import WriteTx
from switchboard.server.store.sqlite.store import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(DatabaseSettings(path=str(tmp_path / "w.db"), busy_timeout_ms=10_000))
    await s.open()
    yield s
    await s.close()


def _put(key: str, fail: bool = False) -> Any:
    def work(tx: WriteTx) -> str:
        tx.state_put("test", "rows", key, {"v": key})
        if fail:
            raise ValueError(f"{key} failed after writing")
        return key

    return work


def _keys(path: str) -> set[str]:
    """What another connection sees committed."""
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT key FROM connector_state")}
    finally:
        db.close()


async def test_concurrent_writes_each_get_their_result_and_are_durable(
    store: SqliteStore, tmp_path: Path
) -> None:
    results = await asyncio.gather(*(store.write(_put(f"k{i}")) for i in range(50)))
    assert results == [f"k{i}" for i in range(50)]
    # answered only after COMMIT: another connection already sees every row
    assert _keys(str(tmp_path / "w.db")) == {f"k{i}" for i in range(50)}


async def test_a_failing_write_rolls_back_alone(store: SqliteStore, tmp_path: Path) -> None:
    outcomes = await asyncio.gather(
        store.write(_put("a")),
        store.write(_put("b", fail=True)),
        store.write(_put("c")),
        return_exceptions=True,
    )
    assert outcomes[0] == "a"
    assert outcomes[2] == "c"
    assert isinstance(outcomes[1], ValueError)
    assert _keys(str(tmp_path / "w.db")) == {"a", "c"}  # b's row went with its savepoint


async def test_small_writes_run_on_the_loop_and_bulk_ones_off_it(store: SqliteStore) -> None:
    def where(tx: WriteTx) -> int:
        return threading.get_ident()

    assert await store.write(where) == threading.get_ident()
    assert await store.write(where, bulk=True) != threading.get_ident()


async def test_a_write_waits_for_another_processs_lock_without_stalling_the_loop(
    store: SqliteStore, tmp_path: Path
) -> None:
    other = sqlite3.connect(str(tmp_path / "w.db"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the write lock, as another worker would hold it
    try:
        pending = asyncio.ensure_future(store.write(_put("late")))
        for _ in range(20):  # the event loop keeps running while the write waits...
            await asyncio.sleep(0.01)
        # ...and the write is still waiting, not failed: waiting on the loop would have
        # blocked these sleeps for the whole busy timeout, then failed the write.
        assert not pending.done()
    finally:
        other.execute("COMMIT")
        other.close()
    assert await asyncio.wait_for(pending, 10) == "late"
    assert _keys(str(tmp_path / "w.db")) == {"late"}


async def test_a_caller_that_gave_up_before_its_turn_is_not_applied(
    store: SqliteStore, tmp_path: Path
) -> None:
    first = asyncio.ensure_future(store.write(_put("kept")))
    dropped = asyncio.ensure_future(store.write(_put("dropped")))
    dropped.cancel()  # before the batch starts (it starts on the next loop iteration)
    assert await first == "kept"
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert _keys(str(tmp_path / "w.db")) == {"kept"}


async def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    store = SqliteStore(DatabaseSettings(path=str(tmp_path / "c.db")))
    await store.open()
    writes = [asyncio.ensure_future(store.write(_put(f"q{i}"))) for i in range(10)]
    await asyncio.sleep(0)  # queued, not yet committed
    await store.close()
    assert [w.result() for w in writes] == [f"q{i}" for i in range(10)]
    assert _keys(str(tmp_path / "c.db")) == {f"q{i}" for i in range(10)}
