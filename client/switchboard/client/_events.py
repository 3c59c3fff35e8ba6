"""The Events service: the log as a stream, and one contact's history."""

# `timeout=` is the gRPC deadline, sent to the server with the call;
# `asyncio.timeout` (what ASYNC109 suggests) cannot do that.
# ruff: noqa: ASYNC109

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.v1 import events_pb2, events_pb2_grpc

from ._transport import USE_DEFAULT, Timeout, Transport


def _timestamp(value: datetime | Timestamp | None) -> Timestamp | None:
    if value is None or isinstance(value, Timestamp):
        return value
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


class Events:
    """`sb.events`: read the event log (scope `events:read`)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._stub = events_pb2_grpc.EventsStub(transport.channel)

    async def stream(
        self,
        *,
        after_cursor: int = 0,
        since: datetime | Timestamp | None = None,
        until: datetime | Timestamp | None = None,
        types: Iterable[str] = (),
        contact_id: str = "",
        stop_at_head: bool = False,
        include_redacted: bool = False,
        timeout: float | None = None,
    ) -> AsyncGenerator[events_pb2.StreamEventsResponse, None]:
        """Yields batches of events, oldest first: the backlog, then new ones as they come.

        Args:
            after_cursor: Resume after this cursor (the last batch's `cursor`).
            since: Start at the first event written at or after this time.
            until: End after the last event written before this time.
            types: Only these event types, e.g. `"contact.updated"`.
            contact_id: Only events about this contact.
            stop_at_head: End once the events that exist now were sent.
            include_redacted: Send erased people's events (redacted) instead of skipping them.
            timeout: Seconds for the whole stream; no deadline by default.
        """
        request = events_pb2.StreamEventsRequest(
            after_cursor=after_cursor,
            since=_timestamp(since),
            until=_timestamp(until),
            types=list(types),
            contact_id=contact_id,
            stop_at_head=stop_at_head,
            include_redacted=include_redacted,
        )
        replies = self._transport.stream(
            self._stub.StreamEvents, request, events_pb2.StreamEventsResponse, timeout
        )
        async with aclosing(replies):
            async for reply in replies:
                yield reply

    async def history(
        self,
        *,
        id: str | None = None,
        email: str | None = None,
        types: Iterable[str] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: Timeout = USE_DEFAULT,
    ) -> events_pb2.GetContactHistoryResponse:
        """One page of a live contact's history, newest first (NOT_FOUND once erased).

        Args:
            id: The contact's id.
            email: The contact's email.
            types: Only these event types.
            page_size: At most this many events (server default 100).
            page_token: `next_page_token` of the previous page.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.
        """
        request = events_pb2.GetContactHistoryRequest(
            types=list(types), page_size=page_size, page_token=page_token
        )
        if id is not None:
            request.contact_id = id
        elif email is not None:
            request.email = email
        return await self._transport.call(
            self._stub.GetContactHistory, request, events_pb2.GetContactHistoryResponse, timeout
        )

    async def iter_history(
        self, *, id: str | None = None, email: str | None = None, types: Iterable[str] = ()
    ) -> AsyncGenerator[events_pb2.Event, None]:
        """Every event of a contact's history, newest first, page after page."""
        token = ""
        while True:
            page = await self.history(id=id, email=email, types=types, page_token=token)
            for event in page.events:
                yield event
            token = page.next_page_token
            if not token:
                return
