"""The pipeline of `switchboard contacts import`: parse on a thread, several streams in flight.

The file is parsed, and its rows turned into request messages, on a thread of its own, so
the event loop only sends. Consecutive batches are grouped into parts of `part_rows` rows;
up to `streams` parts are imported at once, each as one `ImportContacts` stream on its own
connection (a multi-worker server spreads them over its workers). A part that fails with
UNAVAILABLE (the server busy or restarting) is sent again: an import is a series of
upserts, so rows written by the first attempt come back as unchanged. A part the server
refused before writing anything (RESOURCE_EXHAUSTED with a retry delay: its bulk queue
stood too long) is sent again after that delay, for up to REFUSED_WAIT_S in all. Memory stays
bounded: a part is held, serialized, only while it is in flight.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from switchboard.v1 import common_pb2, contacts_pb2

from .._async import Switchboard
from .._errors import ResourceExhaustedError, UnavailableError
from .._messages import to_contact
from ._common import Connection
from .rows import Row

#: Attempts per part when the server answers UNAVAILABLE.
PART_ATTEMPTS = 4
_BACKOFF_S = 0.5
#: Longest a part keeps waiting out the server's refusals (RESOURCE_EXHAUSTED with a retry
#: delay) before the import gives up: a server that stays that busy needs an operator.
REFUSED_WAIT_S = 300.0
_END = object()


@dataclass
class Part:
    """Consecutive batches imported as one stream; `first` is its first row's send index."""

    first: int
    batches: list[bytes] = field(default_factory=list)
    rows: int = 0


@dataclass
class Totals:
    """The summaries of every part, added up, with errors at their index in the file's rows."""

    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    retried: int = 0
    refused: int = 0  # refusals waited out (the part was sent again after the delay)
    errors_truncated: bool = False
    errors: dict[int, common_pb2.ItemError] = field(default_factory=dict)

    def add(self, part: Part, summary: contacts_pb2.ImportContactsResponse) -> None:
        """Adds one part's summary."""
        self.received += summary.received
        self.created += summary.created
        self.updated += summary.updated
        self.unchanged += summary.unchanged
        self.failed += summary.failed
        self.errors_truncated |= summary.errors_truncated
        for error in summary.errors:
            self.errors[part.first + error.index] = error


@dataclass
class Counts:
    """What the parsing thread saw; read by the progress display."""

    bytes_read: int = 0
    sent: int = 0
    unreadable: int = 0


def parts(rows: Iterable[Row], batch_size: int, part_rows: int, counts: Counts) -> Iterator[Part]:
    """Groups the readable rows into parts of serialized batches; counts the others."""
    part = Part(first=0)
    batch: list[contacts_pb2.Contact] = []
    for row in rows:
        if row.contact is None:
            counts.unreadable += 1
            continue
        batch.append(to_contact(row.contact))
        counts.sent += 1
        if len(batch) == batch_size:
            part.batches.append(_serialized(batch))
            part.rows += len(batch)
            batch = []
            if part.rows >= part_rows:
                yield part
                part = Part(first=part.first + part.rows)
    if batch:
        part.batches.append(_serialized(batch))
        part.rows += len(batch)
    if part.rows:
        yield part


def _serialized(batch: list[contacts_pb2.Contact]) -> bytes:
    return contacts_pb2.ImportContactsRequest(contacts=batch).SerializeToString()


class _Reader:
    """Runs a part iterator on a daemon thread, handing parts over through a bounded queue."""

    def __init__(self, source: Iterator[Part], depth: int) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(source,), name="import-reader", daemon=True
        )
        self._thread.start()

    def _run(self, source: Iterator[Part]) -> None:
        try:
            for part in source:
                if not self._put(part):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the loop, which raises it
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    async def next(self) -> Part | None:
        """The next part, or None at the end; re-raises what the reader thread raised."""
        item = await asyncio.to_thread(self._queue.get)
        if isinstance(item, BaseException):
            raise item
        return None if item is _END else item  # type: ignore[return-value]

    def stop(self) -> None:
        """Lets the thread end (it may be blocked on a full queue)."""
        self._stop.set()


async def import_parts(
    conn: Connection,
    source: Iterator[Part],
    *,
    streams: int,
    on_part: Callable[[Totals], None] = lambda totals: None,
) -> Totals:
    """Imports every part, `streams` at a time; `on_part` sees the totals after each one."""
    totals = Totals()
    reader = _Reader(source, depth=streams)
    # One client per stream slot: separate connections (see the module docstring).
    clients = [conn.client(separate_connection=True) for _ in range(streams)]
    free: asyncio.Queue[int] = asyncio.Queue()
    for slot in range(streams):
        free.put_nowait(slot)
    tasks: list[asyncio.Task[None]] = []

    async def send(slot: int, part: Part) -> None:
        try:
            totals.add(part, await _send_part(clients[slot], part, totals))
            on_part(totals)
        finally:
            free.put_nowait(slot)

    try:
        while (part := await reader.next()) is not None:
            slot = await free.get()
            _raise_first_failure(tasks)
            tasks.append(asyncio.create_task(send(slot, part)))
        await asyncio.gather(*tasks)
    finally:
        reader.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(client.aclose() for client in clients))
    return totals


def _raise_first_failure(tasks: list[asyncio.Task[None]]) -> None:
    # A part that failed for good stops the import: no point sending the rest.
    for task in tasks:
        if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
            raise exc


async def _send_part(
    client: Switchboard, part: Part, totals: Totals
) -> contacts_pb2.ImportContactsResponse:
    attempt = 1
    waited = 0.0
    while True:
        requests = [contacts_pb2.ImportContactsRequest.FromString(b) for b in part.batches]
        try:
            return await client.contacts.import_(requests)
        except UnavailableError:
            if attempt == PART_ATTEMPTS:
                raise
        except ResourceExhaustedError as exc:
            # Only a refusal that names its delay wrote nothing and asks to come back; a
            # size or rate limit without one would fail the same way again.
            if exc.retry_after is None or waited + exc.retry_after > REFUSED_WAIT_S:
                raise
            totals.refused += 1
            # Spread the parts refused together, so they do not all come back at once.
            delay = exc.retry_after * random.uniform(1.0, 1.5)
            waited += delay
            await asyncio.sleep(delay)
            continue
        totals.retried += 1
        await asyncio.sleep(_BACKOFF_S * attempt)
        attempt += 1
