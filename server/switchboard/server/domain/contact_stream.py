"""The UpsertContacts stream: many UpsertContact calls over one call, answered in order.

Each item is validated by `prepare_upsert` and written by `ContactService.upsert_batch`,
the same steps the unary `upsert` takes, so validation, idempotency keys, consent, events,
sync runs and cache invalidation cannot drift from UpsertContact. What the stream saves is
the per-call cost (HTTP/2 stream, metadata, the guard chain) and the per-write cost: items
read while the stream's previous batch is being written wait, then go to the store together
as one job (one transaction, one fsync). A lone item is written at once, so a slow caller
is not delayed; under load the batches grow by themselves.

A request message may pack up to 1,000 items and an answer message carries every answer
ready at the time, in order: gRPC's cost per message (a read or write operation, a wake-up
of the event loop) is then shared by many items.

Backpressure: the next request message is read only while fewer than `window` items are
read but not yet answered (so at most `window` plus one message's items are in flight). An
answer counts as given once the transport has taken it, so a caller that stops reading
answers stops the server reading requests, and HTTP/2 flow control then stops the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from switchboard.server.domain.contacts import PreparedUpsert, prepare_upsert
from switchboard.server.errors import InvalidArgument, SwitchboardError, Violation, status_name
from switchboard.v1 import common_pb2, contacts_pb2

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 256
MAX_ITEMS_PER_MESSAGE = 1000

Answer = contacts_pb2.UpsertContactResponse | SwitchboardError
WriteBatch = Callable[[Sequence[PreparedUpsert]], Awaitable[list[Answer]]]

# Batches still being written when their stream ended (cancelled, broken): referenced
# until they finish, so every item the server read is written whole or not at all.
_finishing: set[asyncio.Future[list[Answer]]] = set()
_writes: set[asyncio.Future[list[Answer]]] = set()  # the event loop holds tasks weakly


@dataclass(slots=True)
class WindowStats:
    """How far one stream's reading ran ahead of its answers, and how it was batched."""

    window: int
    in_flight: int = 0
    high_water: int = 0
    read: int = 0
    batches: int = 0


@dataclass(slots=True)
class _Batch:
    done: asyncio.Future[list[Answer]]
    items: list[PreparedUpsert] = field(default_factory=list)


@dataclass(slots=True)
class _Item:
    request: contacts_pb2.UpsertContactRequest
    error: SwitchboardError | None = None  # failed validation: never written
    batch: _Batch | None = None
    position: int = 0

    def ready(self) -> bool:
        return self.batch is None or self.batch.done.done()


_END = object()  # the request stream ended


class UpsertStream:
    """One UpsertContacts call: a reader task batching items, the caller iterating answers."""

    def __init__(
        self,
        write_batch: WriteBatch,
        requests: AsyncIterator[contacts_pb2.UpsertContactsRequest],
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.stats = WindowStats(window)
        self._write_batch = write_batch
        self._requests = requests
        self._items: deque[_Item] = deque()  # read, not yet answered, in request order
        self._end: BaseException | object | None = None  # _END, or why the requests broke
        self._more = asyncio.Event()  # items (or the end) arrived
        self._room = asyncio.Event()  # fewer than `window` items in flight
        self._room.set()
        self._open: _Batch | None = None  # gathering items while the previous one is written
        self._writing = False

    async def answers(self) -> AsyncIterator[contacts_pb2.UpsertContactsResponse]:
        """Per-item answers in request order, packed as they become ready; ends when the
        requests end and every item is answered."""
        reader = asyncio.create_task(self._read())
        items = self._items
        index = 0
        try:
            while True:
                while not items and self._end is None:
                    self._more.clear()
                    await self._more.wait()
                if not items:
                    if isinstance(self._end, BaseException):
                        raise self._end
                    return
                message = contacts_pb2.UpsertContactsResponse()
                results = message.results
                # The first answer may have to wait for its write; every further one that
                # is ready goes in the same message.
                results.append(await _answer(index, items[0]))
                items.popleft()
                index += 1
                while items and items[0].ready() and len(results) < MAX_ITEMS_PER_MESSAGE:
                    results.append(await _answer(index, items.popleft()))
                    index += 1
                yield message
                # Only now, with the answers taken by the transport, may more items be read.
                self.stats.in_flight -= len(results)
                if self.stats.in_flight < self.stats.window:
                    self._room.set()
        finally:
            reader.cancel()
            self._let_finish()

    async def _read(self) -> None:
        try:
            while True:
                while self.stats.in_flight >= self.stats.window:
                    self._room.clear()
                    await self._room.wait()
                try:
                    message = await anext(self._requests)
                except StopAsyncIteration:
                    break
                if len(message.upserts) > MAX_ITEMS_PER_MESSAGE:
                    violation = Violation(
                        "upserts", f"at most {MAX_ITEMS_PER_MESSAGE} items per message"
                    )
                    raise InvalidArgument([violation])
                for request in message.upserts:
                    self._took(request)
                if not self._writing:
                    self._flush()
                self._more.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the caller's side broke: the answers end with it
            self._end = exc
        else:
            self._end = _END
        self._more.set()

    def _took(self, request: contacts_pb2.UpsertContactRequest) -> None:
        stats = self.stats
        stats.read += 1
        stats.in_flight += 1
        stats.high_water = max(stats.high_water, stats.in_flight)
        try:
            prepared = prepare_upsert(request)
        except SwitchboardError as exc:
            self._items.append(_Item(request, error=exc))
            return
        if self._open is None:
            self._open = _Batch(done=asyncio.get_running_loop().create_future())
        batch = self._open
        self._items.append(_Item(request, batch=batch, position=len(batch.items)))
        batch.items.append(prepared)

    def _flush(self) -> None:
        batch, self._open = self._open, None
        if batch is None:
            return
        self._writing = True
        self.stats.batches += 1
        # A task of its own, not part of the call: a cancelled call must not cancel a
        # write the server has already taken on.
        writing = asyncio.ensure_future(self._write_batch(batch.items))
        _writes.add(writing)
        writing.add_done_callback(lambda f: self._written(f, batch))

    def _written(self, writing: asyncio.Future[list[Answer]], batch: _Batch) -> None:
        _writes.discard(writing)
        if writing.cancelled():
            batch.done.cancel()
        elif (exc := writing.exception()) is not None:
            batch.done.set_exception(exc)
        else:
            batch.done.set_result(writing.result())
        self._writing = False
        self._flush()

    def _let_finish(self) -> None:
        """The call ended: let the batches being written finish, and write the one being
        gathered too (its items were read, and a reader of the store would otherwise find
        some items of the stream applied and the ones around them not)."""
        self._flush()
        for item in self._items:
            done = item.batch.done if item.batch is not None else None
            if done is not None and done not in _finishing and not done.done():
                _finishing.add(done)
                done.add_done_callback(_finished)


def _finished(done: asyncio.Future[list[Answer]]) -> None:
    _finishing.discard(done)
    if not done.cancelled() and (exc := done.exception()) is not None:
        log.error("a batch of an ended UpsertContacts stream failed", exc_info=exc)


async def _answer(index: int, item: _Item) -> contacts_pb2.UpsertContactsResult:
    answer = contacts_pb2.UpsertContactsResult(
        index=index, idempotency_key=item.request.idempotency_key
    )
    result: Answer
    if item.error is not None:
        result = item.error
    else:
        assert item.batch is not None
        result = (await asyncio.shield(item.batch.done))[item.position]
    if isinstance(result, SwitchboardError):
        answer.error.CopyFrom(item_error(index, item.request.contact.email, result))
    else:
        answer.upserted.CopyFrom(result)
    return answer


def item_error(index: int, key: str, exc: SwitchboardError) -> common_pb2.ItemError:
    """The `ItemError` of one failed item: the status UpsertContact would have returned."""
    err = common_pb2.ItemError(index=index, code=status_name(exc), message=exc.message, key=key)
    for violation in getattr(exc, "violations", []):
        err.field_violations.add(field=violation.field, description=violation.description)
    return err
