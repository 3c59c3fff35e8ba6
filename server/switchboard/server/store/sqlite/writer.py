"""Group commit for the one write connection: use-cases run on the event loop, COMMIT in a thread.

Writes queue up while a batch is being committed. The next batch takes every waiting job,
runs each small one on the event loop inside its own SAVEPOINT (so one failing use-case rolls
back alone), then hands the COMMIT, with its fsync, to a thread: one fsync for many
acknowledged writes, and the event loop keeps serving while the disk works. A caller's
`await` resolves only after that COMMIT returned.

Why not a writer thread for everything: handing each job to a thread and its result back
(futures, wake-ups, GIL switches) cost more CPU than the SQL itself. Bulk jobs (an import
chunk, a purge) still run in the thread, so that they do not stall the event loop.

Interactive writes are not held up by bulk work: a bulk job gets a transaction of its own,
and while both kinds wait, batches alternate (see `_take`). Mixed into the interactive
batch, a 100-row import chunk made every write that happened to share its transaction wait
for it (the soak's write p99 followed the import's). Between worker processes, `WriterLock`
hands the write lock over at once.

A bulk transaction yields: between its jobs (up to MAX_BULK_BATCH parts of import chunks),
once the next job would end past BULK_SLICE_S (judged by the last one's time), it commits
early when an interactive write is waiting, in this process or, through the lock file's
flag, in another worker; the jobs it did not reach go back to the head of the bulk queue.
The slice keeps bulk work moving under steady calls: yielding after every 25-row part made
imports queue for seconds behind calls' batches.
A worker about to start bulk work while another announces interactive writes waiting lets
that one take the lock first (for up to YIELD_WAIT_S). So a call's write waits for at most
one bulk job, not a whole bulk batch, here or in the other worker. Calls of this worker that
arrive while its bulk batch waits for the lock (holding back, or behind the other worker's
transaction) go first once the lock is taken, and the bulk batch after them.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from switchboard.server.errors import Unavailable
from switchboard.server.observability.logs import CALL_TRACE_ID
from switchboard.server.store.sqlite.tx import SqliteTx
from switchboard.server.store.sqlite.writer_lock import WriterLock
from switchboard.server.store.sqlite.writer_stats import Kind, WriterStats

log = logging.getLogger(__name__)

MAX_BATCH = 256
MAX_BULK_BATCH = 16
#: How long a bulk transaction runs before it yields to waiting calls: at least one job, and
#: a next one only when it would end within the slice (see above).
#: 15 ms was set while overtaken imports starved; with calls first and the overdue bound,
#: 4 ms brought calls' write p99 from 19-20 ms to 13-15 in 2- and 6-minute soaks, imports
#: p99 from 72 to 95-102 ms. No slice (yield after every part): writes no better, imports
#: p99 145 ms. docs/performance.md, "Fifth pass". A part is not started when it would end
#: past the slice: once 25-row parts took 3-3.5 ms, checking the time spent let a second
#: one run, and calls waited ~7 ms. Alternated 30-minute soaks: writes' p99 16.1-16.6 ->
#: 14.0-14.7 ms, imports' p99 134 -> 153, same CPU ("Sixteenth pass").
BULK_SLICE_S = 0.004
#: How long bulk work holds back for another worker's announced interactive writes. 5 ms
#: was tried and measured worse in the soak (write p50 ~50 ms, not ~10): the other worker's
#: calls then went in smaller batches, more transactions for the same writes.
YIELD_WAIT_S = 0.05
#: Bulk work queued this long no longer gives way (it still yields after its slice): it does
#: not hold back for the other worker's calls, nor let this worker's calls that arrive while
#: it waits for the lock go first. Without a bound, the worker the kernel gave more
#: connections saw its imports overtaken again and again: in a 30-min soak its import queue
#: reached 3.8 s (import p99 1.2 s) while calls' writes stayed under 50 ms. 2 s was the bound
#: while bulk work held back for a fixed 50 ms whatever waited in its own worker; with that
#: gone, 250 ms gave imports p99 248 ms against 410-542 at 2 s, calls' p99 unchanged.
BULK_OVERDUE_S = 0.25
#: Weight of the latest bulk batch in the writer's time per bulk job (`bulk_backlog_s`).
DRAIN_WEIGHT = 0.2


def _kind(bulk: bool) -> Kind:
    """`call` inside an RPC's handler (its context has a call trace id), else `background`."""
    if bulk:
        return "bulk"
    return "background" if isinstance(CALL_TRACE_ID.get(), str) else "call"


@dataclass(slots=True)
class _Job:
    fn: Callable[[SqliteTx], Any]
    future: asyncio.Future[Any]
    bulk: bool
    queued: float = 0.0  # perf_counter at submit
    deferred: bool = False  # a bulk job left out of its transaction to let calls in
    kind: Kind = "background"  # for the stats
    result: Any = None
    error: Exception | None = None


class WriteBatcher:
    """Owns the write connection; `submit` from the event loop the batcher was opened on."""

    def __init__(
        self, db: sqlite3.Connection, busy_timeout_ms: int, lock: WriterLock | None = None
    ) -> None:
        self._db = db
        self._tx = SqliteTx(db)
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._lock = lock
        self._loop = asyncio.get_running_loop()
        self._thread = ThreadPoolExecutor(1, "sqlite-commit")
        self._pending: deque[_Job] = deque()  # interactive jobs
        self._bulk: deque[_Job] = deque()
        self._bulk_owed = False  # a bulk job waited through the last batch: it goes next
        self._running = False  # a batch is between BEGIN and the end of its COMMIT
        self._bulk_since = 0.0  # when the running bulk batch's oldest job was queued; 0: none
        self._bulk_done_at = 0.0  # when the last bulk batch committed
        self._bulk_job_s = 0.0  # the writer's time per bulk job, lately (moving average)
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self.stats = WriterStats()
        # The current batch's moments (perf_counter): started, lock taken, COMMIT began, ended.
        self._t = [0.0, 0.0, 0.0, 0.0]

    def submit(self, fn: Callable[[SqliteTx], Any], bulk: bool) -> asyncio.Future[Any]:
        """Queue `fn`; the future resolves once its transaction has committed."""
        if self._closed:
            raise Unavailable("the store is closing")
        future: asyncio.Future[Any] = self._loop.create_future()
        (self._bulk if bulk else self._pending).append(
            _Job(fn, future, bulk, time.perf_counter(), kind=_kind(bulk))
        )
        if not self._running:
            self._running = True
            self._idle.clear()
            # Not at once: callers already runnable in this loop iteration join the batch.
            self._loop.call_soon(self._start)
        return future

    def bulk_backlog_s(self) -> float:
        """About how long a bulk job queued now waits before it runs; 0 when no bulk job
        is queued or running.

        The larger of two readings: how long the oldest bulk job not yet committed has been
        queued or running, and the queued jobs times the writer's recent time per bulk job
        (its calls' batches included: they go between bulk ones). The age alone lags behind a
        growing queue: with imports arriving at three times the rate the writer drains them
        (`python -m bench.admission`), those admitted while it read under 0.5 s then waited
        0.8-1.1 s (p50) and 1.6-1.8 s (p99); with the second reading, 0.54 and 0.82 s.
        """
        queue = self._bulk
        while queue and queue[0].future.cancelled():  # its caller gave up: it costs nothing
            queue.popleft()
        oldest = self._bulk_since
        if queue and (not oldest or queue[0].queued < oldest):
            oldest = queue[0].queued
        if not oldest:
            return 0.0
        return max(time.perf_counter() - oldest, len(queue) * self._bulk_job_s)

    async def close(self) -> None:
        """Commit what is queued, then close the connection and the thread."""
        self._closed = True
        await self._idle.wait()
        await self._loop.run_in_executor(self._thread, self._db.close)
        self._thread.shutdown(wait=True)
        if self._lock is not None:
            self._lock.close()

    def _take(self) -> list[_Job]:
        """The waiting interactive jobs (up to MAX_BATCH), or bulk jobs (up to MAX_BULK_BATCH).

        Interactive jobs go first; a bulk job that waited through an interactive batch goes
        next, so that bulk work still moves under steady calls, and an interactive write
        waits for at most one bulk transaction besides its own batch. A few bulk jobs share
        that transaction so that a backlog of imports still drains under load (one commit,
        one fsync, for up to MAX_BULK_BATCH chunks).
        """
        if self._pending and not self._bulk_owed:
            self._bulk_owed = bool(self._bulk)
            return self._pop_calls()
        self._bulk_owed = False
        count = min(MAX_BULK_BATCH, len(self._bulk))
        return [self._bulk.popleft() for _ in range(count)]

    def _pop_calls(self) -> list[_Job]:
        """The waiting interactive jobs, up to MAX_BATCH, in their order."""
        count = min(MAX_BATCH, len(self._pending))
        return [self._pending.popleft() for _ in range(count)]

    def _start(self) -> None:
        self._t[0] = time.perf_counter()
        batch = [job for job in self._take() if not job.future.cancelled()]
        if not batch and (self._pending or self._bulk):  # only cancelled jobs were taken
            self._loop.call_soon(self._start)
            return
        if not batch:
            self._done()
            return
        bulk = batch[0].bulk  # a batch is all of one kind (see `_take`)
        if bulk:
            self._bulk_since = min(job.queued for job in batch)
        # Bulk work that waited long enough no longer lets the other worker go first.
        polite = bulk and self._t[0] - batch[0].queued < BULK_OVERDUE_S
        try:
            began = self._begin_without_waiting(polite)
        except Exception as exc:  # never leave the writer marked busy with nobody to finish
            self._fail(batch, exc)
            return
        if began:
            self._run(batch)
        else:  # another process holds the write lock: wait for it off the event loop
            if self._lock is not None and not bulk:
                self._lock.announce_waiting(True)
            waiting = self._loop.run_in_executor(
                self._thread, self._begin_waiting, bulk, polite
            )
            waiting.add_done_callback(lambda f: self._after_wait(f, batch, polite))

    def _begin_without_waiting(self, polite: bool) -> bool:
        if self._lock is not None:
            if polite and self._lock.others_waiting():
                return False  # let the other worker's calls go first (`_begin_waiting`)
            if not self._lock.try_acquire():
                return False
        db = self._db
        db.execute("PRAGMA busy_timeout = 0")
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self._release()
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            return False
        finally:
            db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        return True

    def _begin_waiting(self, bulk: bool, polite: bool) -> None:
        lock = self._lock
        if lock is not None and not lock.held:
            if polite:
                until = time.monotonic() + YIELD_WAIT_S
                # Not once this process's own calls wait (see `_after_wait`): holding back
                # then kept them queued for the whole 50 ms, the soak's call queue p99.
                while lock.others_waiting() and not self._pending and time.monotonic() < until:
                    time.sleep(0.0005)
            lock.acquire()
            if not bulk:
                lock.announce_waiting(False)
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _after_wait(self, waited: asyncio.Future[None], batch: list[_Job], polite: bool) -> None:
        error = waited.exception()
        if error is not None:
            self._fail(batch, error)
            return
        if polite and self._pending:  # overdue bulk work no longer gives way
            batch = self._calls_first(batch)
        self._run(batch)

    def _calls_first(self, bulk: list[_Job]) -> list[_Job]:
        """The calls that arrived while a bulk batch waited for the lock, to run first under
        it; the bulk jobs go back to the head of their queue and run next."""
        for job in reversed(bulk):
            self._bulk.appendleft(job)
        calls = [job for job in self._pop_calls() if not job.future.cancelled()]
        self._bulk_owed = True
        self._t[0] = time.perf_counter()  # their queue time ends here; no lock wait of theirs
        return calls

    def _run(self, batch: list[_Job]) -> None:
        self._t[1] = time.perf_counter()
        try:
            for job in batch:
                if not job.bulk:
                    self._apply(job)
        except Exception as exc:  # a savepoint itself failed: the batch is lost
            self._fail(batch, exc)
            return
        committing = self._loop.run_in_executor(self._thread, self._commit, batch)
        committing.add_done_callback(lambda f: self._after_commit(f, batch))

    def _apply(self, job: _Job) -> None:
        db = self._db
        db.execute("SAVEPOINT job")
        try:
            job.result = job.fn(self._tx)
        except Exception as exc:
            db.execute("ROLLBACK TO job")
            job.error = exc
        db.execute("RELEASE job")

    def _commit(self, batch: list[_Job]) -> None:
        # On the commit thread: the bulk jobs, then COMMIT (the event loop does not touch
        # the connection until this returns).
        began = last = time.perf_counter()
        part_s = 0.0  # the last job's time: the next one's likely time
        for i, job in enumerate(batch):
            if not job.bulk:  # a batch of calls: they ran on the event loop (`_run`)
                break
            if i and last + part_s - began >= BULK_SLICE_S and self._calls_waiting():
                for rest in batch[i:]:  # all of them, so that they keep their order
                    rest.deferred = True
                break
            self._apply(job)
            now = time.perf_counter()
            part_s, last = now - last, now
        self._t[2] = time.perf_counter()
        self._db.execute("COMMIT")
        self._t[3] = time.perf_counter()
        self._release()

    def _calls_waiting(self) -> bool:
        # Read from the commit thread: a deque's length is safe to read under the GIL.
        return bool(self._pending) or (self._lock is not None and self._lock.others_waiting())

    def _after_commit(self, committing: asyncio.Future[None], batch: list[_Job]) -> None:
        error = committing.exception()
        if error is not None:
            self._fail(batch, error)
            return
        deferred = [job for job in batch if job.deferred]
        if deferred:  # next bulk turn, in their order, ahead of later bulk jobs
            batch = [job for job in batch if not job.deferred]
            for job in reversed(deferred):
                job.deferred = False
                self._bulk.appendleft(job)
        self._record(batch)
        if batch and batch[0].bulk:
            self._bulk_drained(batch)
        for job in batch:
            if job.future.cancelled():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)
        self._done()

    def _bulk_drained(self, batch: list[_Job]) -> None:
        """Update the time per bulk job with a committed bulk batch: since the last bulk
        commit when these jobs already waited then (the writer's time went to calls and to
        them), else since this batch began."""
        now = time.perf_counter()
        waited = self._bulk_done_at > min(job.queued for job in batch)
        spent = (now - (self._bulk_done_at if waited else self._t[0])) / len(batch)
        average = self._bulk_job_s
        self._bulk_job_s = spent if not average else average + DRAIN_WEIGHT * (spent - average)
        self._bulk_done_at = now

    def _record(self, batch: list[_Job]) -> None:
        started, locked, commit, committed = self._t
        now = time.perf_counter()
        for job in batch:
            self.stats.job(
                job.kind,
                started - job.queued,
                locked - started,
                commit - locked,
                committed - commit,
                now - job.queued,
            )

    def _fail(self, batch: list[_Job], exc: BaseException) -> None:
        log.error("store write batch failed", exc_info=exc)
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rolling back the failed batch failed")
        self._release()
        failure = Unavailable(f"the store could not commit: {exc}")
        for job in batch:
            if not job.future.done():
                job.future.set_exception(failure)
        self._done()

    def _done(self) -> None:
        self._bulk_since = 0.0
        if self._pending or self._bulk:
            self._loop.call_soon(self._start)
        else:
            self._running = False
            self._idle.set()
