"""The PostgreSQL store: a psycopg connection pool, one thread per running transaction.

Why threads and a synchronous connection rather than psycopg's async API for queries: the
store contract runs a use-case as one *synchronous* function over a transaction object
(`store.write(lambda tx: ...)`), which issues its statements one after another and
decides on each result. An async connection cannot be driven from such a function without
blocking the event loop (or rewriting every use-case as a coroutine). So each transaction
takes a pooled synchronous connection on a worker thread: every network round trip happens
off the event loop, which only awaits the transaction's future. The LISTEN connection
(`listen.py`), which only waits for events, uses the async API.

Writes and reads run on threads of their own: `write_connections` for writes, the rest of
`pool_max` for reads. Under a write load the database cannot keep up with, writes queue
for their few threads while reads are still served at once; and fewer SERIALIZABLE writes
at once conflict less. In the soak's mix at 150 calls/s on 2 cores, every write sharing
the 10 threads gave GetContact a p50 of 0.8 s and 3,255 conflicts in 30 s; two write
threads gave 3.5 ms and 1,149 (docs/postgresql.md).

Isolation: SQLite runs one write at a time, so a use-case's reads see no concurrent change.
Here writers run concurrently, on several replicas, so write transactions run SERIALIZABLE
and are re-run from the start (a fresh snapshot) when PostgreSQL reports a serialization
failure, a deadlock or a unique-key race: the outcome is as if they had run one at a time.
Use-case functions have no effects outside the transaction, so re-running one is safe.
Claims are the exception: they run READ COMMITTED with SKIP LOCKED (`outbox.py`).
Reads run REPEATABLE READ, READ ONLY: one consistent snapshot, as an SQLite read
transaction gives.

`write` returns after COMMIT, which (with PostgreSQL's default `synchronous_commit = on`)
is durable, as the contract requires.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from opentelemetry import trace
from psycopg import errors, sql
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.connectors.base import ConnectorState
from switchboard.server.errors import Unavailable
from switchboard.server.store.base import ReadTx, WriteTx
from switchboard.server.store.postgres.connect import conninfo, describe
from switchboard.server.store.postgres.listen import Listener
from switchboard.server.store.postgres.migrate import migrate
from switchboard.server.store.postgres.outbox import OUTBOX_CHANNEL
from switchboard.server.store.postgres.tx import PostgresTx
from switchboard.server.store.state import StoreConnectorState

T = TypeVar("T")
log = logging.getLogger(__name__)

_DB = {"db.system": "postgresql"}
# Conflicts are re-run this many times in all, with a short jittered pause between.
MAX_TRIES = 12
_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected, errors.UniqueViolation)
# What erasure touches: VACUUM drops the dead row versions left by its deletes and updates.
_ERASURE_TABLES = (
    "contacts",
    "contact_lists",
    "activities",
    "leads",
    "idempotency",
    "runs",
    "waits",
    "dead_letters",
    "connector_state",
)


def prepare_database(settings: DatabaseSettings, *, apply: bool = True) -> tuple[int, int]:
    """Bring the schema up to date (before forking workers, and `switchboard db upgrade`).

    Returns (version before, version after).
    """
    with psycopg.connect(conninfo(settings), connect_timeout=_timeout(settings)) as conn:
        return migrate(conn, apply=apply)


def _timeout(settings: DatabaseSettings) -> int:
    return max(1, round(settings.pool_timeout_s))


@dataclass(slots=True)
class _QueuedWrite:
    """A write handed to the write threads: when, and whether a thread has taken it."""

    queued: float  # perf_counter
    started: bool = False


class PostgresStore:
    """`Store` on a PostgreSQL database, shared by any number of processes and replicas."""

    def __init__(self, settings: DatabaseSettings, tracer: trace.Tracer | None = None) -> None:
        self._settings = settings
        self._tracer = tracer or trace.NoOpTracer()
        self._traced = not isinstance(self._tracer, trace.NoOpTracer)
        self._pool: ConnectionPool[psycopg.Connection[TupleRow]] | None = None
        self._writers: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._listener: Listener | None = None
        self.retries = 0  # transactions re-run after a conflict (read by tests and metrics)
        # Writes handed to the write threads, oldest first; trimmed from the head on the
        # event loop only.
        self._write_queue: deque[_QueuedWrite] = deque()

    async def open(self) -> None:
        """Connect, apply pending migrations (unless told not to) and start the threads.

        Raises:
            Unavailable: the database cannot be reached in `pool_timeout_s`.
            SchemaTooNew: the database was migrated by a newer release.
            SchemaTooOld: migrations are pending and `migrate_on_start` is off.
        """
        settings = self._settings
        info = conninfo(settings)
        pool: ConnectionPool[psycopg.Connection[TupleRow]] = ConnectionPool(
            info,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            timeout=settings.pool_timeout_s,
            kwargs={"connect_timeout": _timeout(settings)},
            open=False,
            name="switchboard",
        )
        try:
            await asyncio.to_thread(self._open_and_migrate, pool)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            await asyncio.to_thread(pool.close)
            log.error("cannot reach %s: %s", describe(settings), exc)
            raise Unavailable(f"cannot reach the database at {describe(settings)}") from exc
        except BaseException:
            await asyncio.to_thread(pool.close)
            raise
        self._pool = pool
        writers = min(settings.write_connections, settings.pool_max)
        self._writers = ThreadPoolExecutor(writers, "pg-write")
        self._readers = ThreadPoolExecutor(max(1, settings.pool_max - writers), "pg-read")
        self._listener = Listener(info, OUTBOX_CHANNEL)

    def _open_and_migrate(self, pool: ConnectionPool[psycopg.Connection[TupleRow]]) -> None:
        pool.open(wait=self._settings.pool_min > 0, timeout=self._settings.pool_timeout_s)
        with pool.connection() as conn:
            migrate(conn, apply=self._settings.migrate_on_start)

    async def close(self) -> None:
        """Stop listening, let running transactions finish, close every connection."""
        if self._listener is not None:
            await self._listener.aclose()
            self._listener = None
        running = [t for t in (self._writers, self._readers) if t is not None]
        self._writers = self._readers = None
        for threads in running:
            await asyncio.to_thread(threads.shutdown, True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.close)

    def on_enqueue(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever any process on this database queues a step (NOTIFY)."""
        if self._listener is None:
            raise Unavailable("the store is not open")
        self._listener.subscribe(callback)

    async def write(self, fn: Callable[[WriteTx], T], *, bulk: bool = False) -> T:
        """Run `fn` in a SERIALIZABLE transaction on a store thread; return after COMMIT.

        Every write runs off the event loop here, so `bulk` changes nothing.
        """
        return await self._submit("store.write", fn, read_only=False)

    async def write_each(self, fns: Sequence[Callable[[WriteTx], T]]) -> list[T]:
        """Run `fns` one after another, each in its own transaction: run together, parts
        of one piece of work would only conflict with each other and retry."""
        return [await self.write(fn) for fn in fns]

    async def read(self, fn: Callable[[ReadTx], T], *, point: bool = False) -> T:
        """Run `fn` on a store thread against one snapshot (REPEATABLE READ, READ ONLY)."""
        return await self._submit("store.read", fn, read_only=True)

    def bulk_backlog_s(self) -> float:
        """How long the oldest write of this process still waiting for a write thread has
        waited (0 when none): here every write queues for the same `write_connections`."""
        queue = self._trimmed_write_queue()
        return time.perf_counter() - queue[0].queued if queue else 0.0

    def _trimmed_write_queue(self) -> deque[_QueuedWrite]:
        queue = self._write_queue
        while queue and queue[0].started:
            queue.popleft()
        return queue

    async def _submit(self, name: str, fn: Callable[[Any], T], read_only: bool) -> T:
        threads = self._readers if read_only else self._writers
        if threads is None:
            raise Unavailable("the store is not open")
        loop = asyncio.get_running_loop()
        if read_only:
            return await self._in_thread(loop, threads, name, self._transact, fn, read_only)
        entry = _QueuedWrite(time.perf_counter())
        self._trimmed_write_queue().append(entry)

        def run(fn: Callable[[PostgresTx], T], read_only: bool) -> T:
            entry.started = True  # no longer part of the backlog
            return self._transact(fn, read_only)

        try:
            return await self._in_thread(loop, threads, name, run, fn, read_only)
        finally:
            entry.started = True  # also when cancelled before a thread took it

    async def _in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        threads: ThreadPoolExecutor,
        name: str,
        run: Callable[[Callable[[PostgresTx], T], bool], T],
        fn: Callable[[PostgresTx], T],
        read_only: bool,
    ) -> T:
        if not (self._traced and trace.get_current_span().get_span_context().is_valid):
            return await loop.run_in_executor(threads, run, fn, read_only)
        with self._tracer.start_as_current_span(name, attributes=_DB):
            return await loop.run_in_executor(threads, run, fn, read_only)

    def _transact(self, fn: Callable[[PostgresTx], T], read_only: bool) -> T:
        pool = self._pool
        if pool is None:
            raise Unavailable("the store is not open")
        for attempt in range(1, MAX_TRIES + 1):
            try:
                with pool.connection() as conn:
                    return self._once(conn, fn, read_only)
            except _RETRYABLE as exc:
                if attempt == MAX_TRIES:
                    # Nothing was committed, so the caller may safely try again later.
                    log.warning("write still conflicting after %d tries: %s", attempt, exc)
                    raise Unavailable(
                        "the database is busy with conflicting writes; try again"
                    ) from exc
                self.retries += 1
                # Jittered and growing: conflicting replicas should not collide again.
                time.sleep(random.uniform(0, 0.002 * 2**min(attempt, 6)))
            except PoolTimeout as exc:
                log.error("no database connection within %gs: %s", pool.timeout, exc)
                raise Unavailable("the database is not answering; try again") from exc
            except _NotCommitted as exc:
                log.error("database connection lost: %s", exc.__cause__)
                raise Unavailable("the database connection was lost; try again") from exc
            except psycopg.OperationalError as exc:  # during COMMIT: the outcome is unknown
                log.error("database connection lost at commit: %s", exc)
                raise Unavailable("the database connection was lost; try again") from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _once(conn: psycopg.Connection[TupleRow], fn: Callable[[PostgresTx], T], ro: bool) -> T:
        conn.isolation_level = (
            psycopg.IsolationLevel.REPEATABLE_READ if ro else psycopg.IsolationLevel.SERIALIZABLE
        )
        conn.read_only = ro
        try:
            result = fn(PostgresTx(conn))
        except psycopg.OperationalError as exc:
            if isinstance(exc, _RETRYABLE):
                raise
            conn.rollback()
            raise _NotCommitted() from exc
        except BaseException:
            conn.rollback()
            raise
        # A lost connection during COMMIT leaves the outcome unknown: not retried here
        # (the caller's idempotency key makes its own retry safe).
        conn.commit()
        return result

    async def forget_old_versions(self) -> None:
        """VACUUM the tables erasure touches, so their dead row versions are dropped.

        PostgreSQL keeps a deleted or overwritten row's old version until VACUUM removes
        it (and a transaction still using an older snapshot holds it until it ends). The
        write-ahead log and its archives, and backups, still hold it until they are
        recycled: see docs/postgresql.md.
        """
        if self._pool is None:
            raise Unavailable("the store is not open")
        await asyncio.to_thread(self._vacuum)

    def _vacuum(self) -> None:
        with psycopg.connect(conninfo(self._settings), autocommit=True) as conn:
            for table in _ERASURE_TABLES:
                conn.execute(sql.SQL("VACUUM {}").format(sql.Identifier(table)))

    def outbox_stats(self, now_us: int) -> tuple[int, float]:
        """Pending outbox rows and seconds since the oldest became due (synchronous)."""
        count, oldest = self._one("SELECT count(*), min(available_us) FROM outbox")
        age = max(0.0, (now_us - int(oldest)) / 1e6) if oldest is not None else 0.0
        return int(count), age

    def dead_letter_count(self) -> int:
        """Dead letters waiting for an operator (synchronous, like `outbox_stats`)."""
        return int(self._one("SELECT count(*) FROM dead_letters")[0])

    def _one(self, query: str) -> tuple[Any, ...]:
        if self._pool is None:
            raise Unavailable("the store is not open")
        with self._pool.connection(timeout=1.0) as conn:
            conn.read_only = False
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            row = conn.execute(query.encode()).fetchone()
            conn.commit()
        assert row is not None  # an aggregate always returns one row
        return tuple(row)

    def connector_state(self, connector: str) -> ConnectorState:
        """Durable key/value state for one connector, kept in this database."""
        return StoreConnectorState(self, connector)


class _NotCommitted(Exception):
    """The connection failed before COMMIT was sent: nothing was written."""
