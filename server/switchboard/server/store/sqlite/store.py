"""The embedded SQLite store: one write connection with group commit, and reader threads.

Writes go through `WriteBatcher` (see `sqlite_writer`): every job waiting runs inside its
own SAVEPOINT and they commit together, one fsync for many acknowledged writes. A caller's
`await write(...)` returns only after that COMMIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from opentelemetry import trace

from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.connectors.base import ConnectorState
from switchboard.server.errors import Unavailable
from switchboard.server.store.base import ReadTx, SchemaTooNew, WriteTx
from switchboard.server.store.sqlite.checkpointer import (
    AUTOCHECKPOINT_PAGES,
    JOURNAL_SIZE_LIMIT,
    Checkpointer,
)
from switchboard.server.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from switchboard.server.store.sqlite.tx import SqliteTx
from switchboard.server.store.sqlite.writer import WriteBatcher
from switchboard.server.store.sqlite.writer_lock import WriterLock
from switchboard.server.store.state import StoreConnectorState

T = TypeVar("T")
log = logging.getLogger(__name__)


_DB = {"db.system": "sqlite"}


def connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open a connection configured for WAL, durable commits and manual transactions."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    db.execute("PRAGMA journal_mode = WAL")
    # FULL: a committed transaction survives power loss too, not only a killed process.
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    # Deleted and overwritten content is zeroed, not left in free space: erasure must not
    # leave the person readable in the file (with a hex editor or a recovery tool).
    db.execute("PRAGMA secure_delete = ON")
    return db


def migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations this file has not seen yet.

    The version is read after taking the write lock, so processes that open a new file at
    the same moment (workers, a REST sidecar) migrate it once, one after the other.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the database is at schema version {version}, newer than the {SCHEMA_VERSION} "
                "this Switchboard knows: run the newer release (downgrades are not supported)"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in _statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (trigger bodies keep their semicolons)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip().strip(";").strip():
                statements.append(pending)
            pending = ""
    if pending.strip():
        statements.append(pending)
    return statements


def prepare_database(settings: DatabaseSettings) -> None:
    """Create the file and bring its schema up to date (used before forking workers)."""
    Path(settings.path).parent.mkdir(parents=True, exist_ok=True)
    db = connect(settings.path, settings.busy_timeout_ms)
    try:
        migrate(db)
    finally:
        db.close()


class SqliteStore:
    """`Store` on one SQLite file."""

    def __init__(self, settings: DatabaseSettings, tracer: trace.Tracer | None = None) -> None:
        self._settings = settings
        # Injectable: one child span per transaction under the caller's span (RPC or step),
        # and none outside a trace (see `_in_trace`).
        self._tracer = tracer or trace.NoOpTracer()
        # A no-op span still costs a context attach and detach per call (~3 % of a trigger).
        self._traced = not isinstance(self._tracer, trace.NoOpTracer)
        self._writer: WriteBatcher | None = None
        self._checkpointer: Checkpointer | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._reader_dbs: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._inline_db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._stats_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Create the file and schema, then start the writer and the reader threads."""
        path = Path(self._settings.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await asyncio.to_thread(self._open_writer)
        lock = WriterLock(f"{self._settings.path}-writer.lock")
        self._writer = WriteBatcher(db, self._settings.busy_timeout_ms, lock)
        self._readers = ThreadPoolExecutor(self._settings.readers, "sqlite-reader")
        if self._settings.checkpoint_interval_s > 0:
            self._checkpointer = Checkpointer(
                lambda: connect(self._settings.path, self._settings.busy_timeout_ms),
                self._settings.checkpoint_interval_s,
            )
            self._checkpointer.start()
        if self._settings.writer_stats_s > 0:
            self._stats_task = asyncio.create_task(self._log_stats(), name="writer-stats")

    async def _log_stats(self) -> None:
        # WARNING: an operator turned this diagnostic on and reads it at the usual log level.
        while self._writer is not None:
            await asyncio.sleep(self._settings.writer_stats_s)
            if self._writer is None:
                return
            figures = self._writer.stats.take()
            log.warning(
                "store writer stats", extra={"fields": {"pid": os.getpid(), "writer": figures}}
            )

    def _open_writer(self) -> sqlite3.Connection:
        db = connect(self._settings.path, self._settings.busy_timeout_ms)
        migrate(db)
        # Statement journals in memory. A statement that fires a trigger (a contact's facts
        # row, a run's status) or may change several rows keeps, inside our transactions,
        # the first image of every page it changes, so that it can be undone alone; on
        # file temp storage that is a write(2) per page to a temporary file: 4.6 per
        # segment_facts row, 18 of its 29 µs. Set after the migrations, whose index builds
        # may sort more rows than should sit in memory.
        db.execute("PRAGMA temp_store = MEMORY")
        if self._settings.checkpoint_interval_s > 0:  # the Checkpointer thread does it
            db.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
            db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        return db

    async def close(self) -> None:
        """Drain queued writes, stop the threads and close every connection."""
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
            self._stats_task = None
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()
        if self._checkpointer is not None:
            checkpointer, self._checkpointer = self._checkpointer, None
            await asyncio.to_thread(checkpointer.close)
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        with self._lock:
            for db in self._reader_dbs:
                db.close()
            self._reader_dbs.clear()
        if self._inline_db is not None:
            self._inline_db.close()
            self._inline_db = None

    async def write(self, fn: Callable[[WriteTx], T], *, bulk: bool = False) -> T:
        """Queue `fn` for the writer; resolve once its transaction has committed.

        `bulk=True` marks a job that touches many rows: it runs on the commit thread rather
        than on the event loop.
        """
        if self._writer is None:
            raise Unavailable("the store is not open")
        if not self._in_trace():
            result: T = await self._writer.submit(fn, bulk)
            return result
        with self._tracer.start_as_current_span("store.write", attributes=_DB):
            result = await self._writer.submit(fn, bulk)
            return result

    async def write_each(self, fns: Sequence[Callable[[WriteTx], T]]) -> list[T]:
        """Queue every one of `fns` as a bulk job at once, in order: the writer puts up to
        MAX_BULK_BATCH of them in one transaction and commits between two of them when a
        call's write waits, so a call waits for one part, not the whole."""
        writer = self._writer
        if writer is None:
            raise Unavailable("the store is not open")
        futures = [writer.submit(fn, True) for fn in fns]
        if not self._in_trace():
            return list(await asyncio.gather(*futures))
        with self._tracer.start_as_current_span("store.write", attributes=_DB):
            return list(await asyncio.gather(*futures))

    def bulk_backlog_s(self) -> float:
        """About how long a bulk job queued now in this process would wait (0 when none is
        queued or running); see `WriteBatcher.bulk_backlog_s`."""
        writer = self._writer
        return 0.0 if writer is None else writer.bulk_backlog_s()

    async def forget_old_versions(self) -> None:
        """Copy the write-ahead log into the database file and truncate it.

        With `secure_delete`, a delete zeroes the data in the current version of its page,
        but the log still holds the page's earlier versions until it is rewritten. The
        TRUNCATE checkpoint waits (up to the busy timeout) for the writer and for readers
        on older snapshots, then leaves an empty log. Called after an erasure.
        """
        if self._readers is None:
            raise Unavailable("the store is not open")
        busy, frames, copied = await asyncio.to_thread(self._checkpoint)
        if busy:
            log.warning(
                "checkpoint after erasure did not complete (%s of %s log frames copied); "
                "the log is truncated at the next checkpoint",
                copied,
                frames,
            )

    def _checkpoint(self) -> tuple[int, int, int]:
        db = connect(self._settings.path, self._settings.busy_timeout_ms)
        try:
            busy, frames, copied = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return int(busy), int(frames), int(copied)
        finally:
            db.close()

    async def read(self, fn: Callable[[ReadTx], T], *, point: bool = False) -> T:
        """Run `fn` on a reader thread inside a read transaction (a consistent snapshot)."""
        if self._readers is None:
            raise Unavailable("the store is not open")
        if not self._in_trace():
            return await self._read_here_or_there(fn, point)
        with self._tracer.start_as_current_span("store.read", attributes=_DB):
            return await self._read_here_or_there(fn, point)

    def _in_trace(self) -> bool:
        """Spans for transactions of a call or a delivery only: background polls (claims,
        purges) would otherwise start a new root trace every poll interval."""
        return self._traced and trace.get_current_span().get_span_context().is_valid

    async def _read_here_or_there(self, fn: Callable[[ReadTx], T], point: bool) -> T:
        if point and self._settings.inline_point_reads:
            # A hop to a reader thread and back cost more than the lookups themselves:
            # ScoreLead used ~500 us of CPU per call through the pool, ~320 us inline.
            return self._read_inline(fn)
        assert self._readers is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read, fn)

    def outbox_stats(self, now_us: int) -> tuple[int, float]:
        """Pending outbox rows and seconds since the oldest became due (0 when none is).

        Synchronous, on its own short-lived connection: metric callbacks call it from
        whatever thread collects.
        """
        db = sqlite3.connect(f"file:{self._settings.path}?mode=ro", uri=True, timeout=1.0)
        try:
            count, oldest = db.execute("SELECT count(*), min(available_us) FROM outbox").fetchone()
        finally:
            db.close()
        age = max(0.0, (now_us - oldest) / 1e6) if oldest is not None else 0.0
        return int(count), age

    def dead_letter_count(self) -> int:
        """Dead letters waiting for an operator (synchronous, like `outbox_stats`)."""
        db = sqlite3.connect(f"file:{self._settings.path}?mode=ro", uri=True, timeout=1.0)
        try:
            return int(db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
        finally:
            db.close()

    def connector_state(self, connector: str) -> ConnectorState:
        """Durable key/value state for one connector, kept in this database."""
        return StoreConnectorState(self, connector)

    def _read_inline(self, fn: Callable[[ReadTx], T]) -> T:
        if self._inline_db is None:
            self._inline_db = connect(self._settings.path, self._settings.busy_timeout_ms)
        db = self._inline_db
        db.execute("BEGIN")
        try:
            return fn(SqliteTx(db))
        finally:
            db.execute("COMMIT")

    def _read(self, fn: Callable[[ReadTx], T]) -> T:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = connect(self._settings.path, self._settings.busy_timeout_ms)
            self._local.db = db
            with self._lock:
                self._reader_dbs.append(db)
        db.execute("BEGIN")
        try:
            return fn(SqliteTx(db))
        finally:
            db.execute("COMMIT")
