"""The embedded SQLite store: one writer thread with group commit, a pool of reader threads.

Writes queue up for the single writer. It takes every job waiting, runs each inside its own
SAVEPOINT (so one failing use-case rolls back alone) and commits them together: one fsync
for many acknowledged writes. A caller's `await write(...)` returns only after that COMMIT.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import trace

from switchboard.server.config import DatabaseSettings
from switchboard.server.connectors.base import ConnectorState
from switchboard.server.errors import Unavailable
from switchboard.server.store.base import ReadTx, WriteTx
from switchboard.server.store.sqlite_schema import MIGRATIONS
from switchboard.server.store.sqlite_tx import SqliteTx
from switchboard.server.store.state import StoreConnectorState

T = TypeVar("T")
log = logging.getLogger(__name__)

_MAX_BATCH = 256
_Job = tuple[Callable[[SqliteTx], Any], "concurrent.futures.Future[Any]"]


_DB = {"db.system": "sqlite"}


def connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open a connection configured for WAL, durable commits and manual transactions."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    db.execute("PRAGMA journal_mode = WAL")
    # FULL: a committed transaction survives power loss too, not only a killed process.
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    return db


def migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations this file has not seen yet.

    The version is read after taking the write lock, so processes that open a new file at
    the same moment (workers, a REST sidecar) migrate it once, one after the other.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
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
        # Injectable: one child span per transaction under the caller's span (RPC or step).
        self._tracer = tracer or trace.NoOpTracer()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._reader_dbs: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._inline_db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        """Create the file and schema, then start the writer and reader threads."""
        path = Path(self._settings.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await asyncio.to_thread(self._open_writer)
        self._writer = threading.Thread(
            target=self._write_loop, args=(db,), name="sqlite-writer", daemon=True
        )
        self._writer.start()
        self._readers = ThreadPoolExecutor(self._settings.readers, "sqlite-reader")

    def _open_writer(self) -> sqlite3.Connection:
        db = connect(self._settings.path, self._settings.busy_timeout_ms)
        migrate(db)
        return db

    async def close(self) -> None:
        """Drain queued writes, stop the threads and close every connection."""
        if self._writer is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
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

    async def write(self, fn: Callable[[WriteTx], T]) -> T:
        """Queue `fn` for the writer; resolve once its transaction has committed."""
        if self._writer is None:
            raise Unavailable("the store is not open")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._tracer.start_as_current_span("store.write", attributes=_DB):
            self._jobs.put((fn, future))
            return await asyncio.wrap_future(future)

    async def read(self, fn: Callable[[ReadTx], T], *, point: bool = False) -> T:
        """Run `fn` on a reader thread inside a read transaction (a consistent snapshot)."""
        if self._readers is None:
            raise Unavailable("the store is not open")
        with self._tracer.start_as_current_span("store.read", attributes=_DB):
            if point and self._settings.inline_point_reads:
                # A hop to a reader thread and back cost more than the lookups themselves:
                # ScoreLead used ~500 us of CPU per call through the pool, ~320 us inline.
                return self._read_inline(fn)
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

    def _write_loop(self, db: sqlite3.Connection) -> None:
        tx = SqliteTx(db)
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._commit_batch(db, tx, batch)
        db.close()

    def _commit_batch(self, db: sqlite3.Connection, tx: SqliteTx, batch: list[_Job]) -> None:
        outcomes: list[tuple[concurrent.futures.Future[Any], Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for fn, future in batch:
                if not future.set_running_or_notify_cancel():
                    continue  # the caller gave up before its turn: do not apply it
                db.execute("SAVEPOINT job")
                try:
                    result = fn(tx)
                except Exception as exc:
                    db.execute("ROLLBACK TO job")
                    outcomes.append((future, None, exc))
                else:
                    outcomes.append((future, result, None))
                db.execute("RELEASE job")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("store write batch failed")
            if db.in_transaction:
                db.execute("ROLLBACK")
            failure = Unavailable(f"the store could not commit: {exc}")
            for _, future in batch:
                if future.running():
                    future.set_exception(failure)
            return
        for future, result, error in outcomes:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
