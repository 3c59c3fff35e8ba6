"""The UpsertContacts stream: many unary upserts over one call, answered in order.

Each item goes through `ContactService.upsert`, the unary use-case itself, so validation,
idempotency keys, consent, events, sync runs and cache invalidation cannot drift from
UpsertContact. What the stream saves is the per-call cost (HTTP/2 stream, metadata,
authentication, the guard chain), and its writes share commits: items read close together
are queued on the store's group-commit writer at once, which applies each in its own
savepoint and commits them with one fsync.

Backpressure: at most `window` items are read but not yet answered. An answer is counted
as given once the transport has taken it, so a caller that stops reading answers stops the
server reading requests, and HTTP/2 flow control then stops the caller sending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from switchboard.server.errors import SwitchboardError, status_name
from switchboard.v1 import common_pb2, contacts_pb2

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 256  # the writer commits at most 256 jobs at once (MAX_BATCH)

Upsert = Callable[[contacts_pb2.UpsertContactRequest], Awaitable[contacts_pb2.UpsertContactResponse]]

# Items still being written when their stream ended (cancelled, broken): kept referenced
# until they finish, so every item the server read is applied whole.
_finishing: set[asyncio.Future[contacts_pb2.UpsertContactResponse]] = set()


@dataclass(slots=True)
class WindowStats:
    """How far the server read ahead of its answers on one stream (for tests and metrics)."""

    window: int
    in_flight: int = 0
    high_water: int = 0
    read: int = 0

    def took(self) -> None:
        self.read += 1
        self.in_flight += 1
        self.high_water = max(self.high_water, self.in_flight)


_End = object()  # the request stream ended


class UpsertStream:
    """One UpsertContacts call: a reader task starting items, the caller iterating answers."""

    def __init__(
        self,
        upsert: Upsert,
        requests: AsyncIterator[contacts_pb2.UpsertContactsRequest],
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.stats = WindowStats(window)
        self._upsert = upsert
        self._requests = requests
        self._room = asyncio.Semaphore(window)
        self._started: asyncio.Queue[
            tuple[contacts_pb2.UpsertContactRequest, asyncio.Future[contacts_pb2.UpsertContactResponse]]
            | BaseException
            | object
        ] = asyncio.Queue()
        self._current: asyncio.Future[contacts_pb2.UpsertContactResponse] | None = None

    async def answers(self) -> AsyncIterator[contacts_pb2.UpsertContactsResponse]:
        """Per-item answers in request order; ends when the requests end and all are answered."""
        reader = asyncio.create_task(self._read())
        index = 0
        try:
            while True:
                entry = await self._started.get()
                if entry is _End:
                    break
                if isinstance(entry, BaseException):
                    raise entry
                assert isinstance(entry, tuple)
                request, pending = entry
                self._current = pending
                yield await _answer(index, request, pending)
                self._current = None
                # Only now, with the answer taken by the transport, may another item be read.
                self.stats.in_flight -= 1
                self._room.release()
                index += 1
        finally:
            reader.cancel()
            self._let_finish()

    async def _read(self) -> None:
        try:
            while True:
                await self._room.acquire()
                try:
                    item = await anext(self._requests)
                except StopAsyncIteration:
                    break
                self.stats.took()
                # Started at once, in stream order: the writer applies jobs in the order
                # they were queued, so a later item sees an earlier one's write.
                pending = asyncio.ensure_future(self._upsert(item.upsert))
                self._started.put_nowait((item.upsert, pending))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the caller's side broke: let the answers end with it
            self._started.put_nowait(exc)
            return
        self._started.put_nowait(_End)

    def _let_finish(self) -> None:
        left = [self._current] if self._current is not None else []
        while not self._started.empty():
            entry = self._started.get_nowait()
            if isinstance(entry, tuple):
                left.append(entry[1])
        for pending in left:
            if pending.done():
                _finished(pending)
            else:
                _finishing.add(pending)
                pending.add_done_callback(_finished)


def _finished(pending: asyncio.Future[contacts_pb2.UpsertContactResponse]) -> None:
    _finishing.discard(pending)
    if not pending.cancelled() and pending.exception() is not None:
        exc = pending.exception()
        if not isinstance(exc, SwitchboardError):
            log.error("an upsert of an ended stream failed", exc_info=exc)


async def _answer(
    index: int,
    request: contacts_pb2.UpsertContactRequest,
    pending: asyncio.Future[contacts_pb2.UpsertContactResponse],
) -> contacts_pb2.UpsertContactsResponse:
    answer = contacts_pb2.UpsertContactsResponse(
        index=index, idempotency_key=request.idempotency_key
    )
    try:
        # Shielded: a cancelled call must not cancel a write the server has already taken on.
        answer.upserted.CopyFrom(await asyncio.shield(pending))
    except SwitchboardError as exc:
        answer.error.CopyFrom(item_error(index, request.contact.email, exc))
    return answer


def item_error(index: int, key: str, exc: SwitchboardError) -> common_pb2.ItemError:
    """The `ItemError` of one failed item: the status UpsertContact would have returned."""
    err = common_pb2.ItemError(index=index, code=status_name(exc), message=exc.message, key=key)
    for violation in getattr(exc, "violations", []):
        err.field_violations.add(field=violation.field, description=violation.description)
    return err
