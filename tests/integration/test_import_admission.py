"""An import that would queue behind seconds of bulk writes is refused before it writes a
row, with a retry delay the client decodes and the CLI waits out. Real server, real store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchboard.client import NotFoundError, ResourceExhaustedError, Switchboard
from switchboard.client.cli._common import Connection
from switchboard.client.cli.importer import Counts, import_parts, parts
from switchboard.client.cli.rows import Row
from switchboard.server.app.build import App
from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.store.select import AnyStore
from switchboard.server.store.sqlite.store import SqliteStore

StartApp = Callable[..., Awaitable[App]]


class Standing:
    """Bulk writes held on `gate`: the first (two, on PostgreSQL's two write threads) run
    and block, the rest queue behind them, until `release`."""

    def __init__(self, store: AnyStore, writes: int) -> None:
        self.gate = threading.Event()
        self._store = store
        self._writes = writes
        self.held: list[asyncio.Task[Any]] = []

    async def stand(self) -> None:
        for _ in range(self._writes):
            self.held.append(asyncio.create_task(self._store.write(self._wait, bulk=True)))
            await asyncio.sleep(0.05)  # let the writer take it before the next one arrives

    def _wait(self, tx: object) -> bool:
        return self.gate.wait(10)

    async def release(self) -> None:
        self.gate.set()
        await asyncio.gather(*self.held, return_exceptions=True)


@asynccontextmanager
async def standing(store: AnyStore, writes: int = 3) -> AsyncIterator[Standing]:
    held = Standing(store, writes)
    await held.stand()
    try:
        yield held
    finally:
        await held.release()


@asynccontextmanager
async def sqlite_store(path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(DatabaseSettings(path=str(path)))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_the_backlog_is_the_oldest_queued_writes_wait(any_store: AnyStore) -> None:
    assert any_store.bulk_backlog_s() == 0.0
    async with standing(any_store):
        await asyncio.sleep(0.2)
        assert any_store.bulk_backlog_s() >= 0.2
    assert any_store.bulk_backlog_s() == 0.0


async def test_a_queue_reads_as_its_jobs_times_the_time_per_job_on_sqlite(
    tmp_path: Path,
) -> None:
    # A queue that just formed has no age yet; what it will cost is its length times what a
    # bulk job has lately taken, which is what an import joining it would wait.
    async with sqlite_store(tmp_path / "q.db") as store:
        for _ in range(5):  # one at a time: the writer learns ~40 ms per bulk job
            await store.write(lambda tx: time.sleep(0.04), bulk=True)
        async with standing(store, writes=1):
            queued = [asyncio.create_task(store.write(lambda tx: 0, bulk=True)) for _ in range(10)]
            await asyncio.sleep(0)
            assert store.bulk_backlog_s() >= 0.3  # ~10 x 40 ms; the oldest job's age ~50 ms
        await asyncio.gather(*queued)
        assert store.bulk_backlog_s() == 0.0


async def test_a_cancelled_queued_write_leaves_the_backlog(any_store: AnyStore) -> None:
    async with standing(any_store) as held:
        await asyncio.sleep(0.1)
        before = any_store.bulk_backlog_s()
        for task in held.held[1:]:  # every one still queued: their callers gave up
            task.cancel()
        await asyncio.gather(*held.held[1:], return_exceptions=True)
        await asyncio.sleep(0.1)
        if isinstance(any_store, SqliteStore):
            # The running bulk job is still the oldest one not committed; it counts.
            assert any_store.bulk_backlog_s() >= before + 0.1
        else:  # PostgreSQL counts writes waiting for a write thread only
            assert any_store.bulk_backlog_s() == 0.0


async def test_a_running_bulk_job_counts_on_sqlite(tmp_path: Path) -> None:
    # One writer: a bulk transaction that runs long holds back every bulk job behind it,
    # even when none has queued yet.
    async with sqlite_store(tmp_path / "b.db") as store:
        async with standing(store, writes=1):
            await asyncio.sleep(0.2)
            assert store.bulk_backlog_s() >= 0.2
        assert store.bulk_backlog_s() == 0.0


async def test_an_import_is_refused_whole_while_bulk_writes_stand(start_app: StartApp) -> None:
    app = await start_app(limits={"import_backlog_s": 0.2})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        async with standing(app.store):
            await asyncio.sleep(0.3)
            with pytest.raises(ResourceExhaustedError) as info:
                await sb.contacts.import_([[{"email": "late@example.com"}]])
            with pytest.raises(NotFoundError):
                await sb.contacts.get(email="late@example.com")
        summary = await sb.contacts.import_([[{"email": "late@example.com"}]])
    error = info.value
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "(limits.import_backlog_s = 0.2)" in error.message
    assert "this import wrote nothing" in error.message
    assert error.retry_after is not None
    assert 0.5 <= error.retry_after <= 30
    assert summary.created == 1


async def test_an_import_that_would_outlive_its_deadline_is_refused(start_app: StartApp) -> None:
    app = await start_app(limits={"import_backlog_s": 60})
    async with Switchboard(f"127.0.0.1:{app.port}") as sb, standing(app.store):
        await asyncio.sleep(1.0)  # a second behind: under the bound, over the call's time
        with pytest.raises(ResourceExhaustedError) as info:
            await sb.contacts.import_([[{"email": "hurried@example.com"}]], timeout=0.8)
    assert "left before the deadline" in info.value.message
    assert "wrote nothing" in info.value.message


async def test_a_refused_long_stream_gets_its_status(start_app: StartApp) -> None:
    # The client is still sending when the server refuses after the first message; the
    # refusal must still arrive as RESOURCE_EXHAUSTED, not as a broken stream.
    app = await start_app(limits={"import_backlog_s": 0.2})

    def batches() -> Any:
        for b in range(40):
            yield [{"email": f"s{b}-{i}@example.com"} for i in range(1000)]

    async with Switchboard(f"127.0.0.1:{app.port}", timeout=20.0) as sb, standing(app.store):
        await asyncio.sleep(0.3)
        with pytest.raises(ResourceExhaustedError) as info:
            await sb.contacts.import_(batches())
    assert info.value.retry_after is not None


async def test_zero_admits_every_import(start_app: StartApp) -> None:
    app = await start_app(limits={"import_backlog_s": 0})
    async with (
        Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb,
        standing(app.store) as held,
    ):
        await asyncio.sleep(0.3)
        importing = asyncio.create_task(sb.contacts.import_([[{"email": "q@example.com"}]]))
        await asyncio.sleep(0.2)
        assert not importing.done()  # queued behind the held writes, not refused
        await held.release()
        assert (await importing).created == 1


async def test_the_cli_import_waits_out_a_refusal(start_app: StartApp) -> None:
    app = await start_app(limits={"import_backlog_s": 0.2})
    rows = [Row(i + 1, {}, {"email": f"r{i}@example.com"}, None) for i in range(30)]
    async with standing(app.store) as held:
        await asyncio.sleep(0.3)
        # The server catches up while the CLI waits.
        asyncio.get_running_loop().call_later(0.3, held.gate.set)
        totals = await import_parts(
            Connection(f"127.0.0.1:{app.port}", None, 10.0),
            parts(rows, batch_size=10, part_rows=30, counts=Counts()),
            streams=1,
        )
    assert totals.refused >= 1
    assert (totals.received, totals.created, totals.failed) == (30, 30, 0)
