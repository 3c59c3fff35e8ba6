"""Event use-cases: stream the log, and one person's history."""

from __future__ import annotations

from collections.abc import AsyncIterator

from switchboard.server.common.timeutil import now_us, to_us
from switchboard.server.domain.event_stream import GAP_GRACE_S, StreamPlan, stream
from switchboard.server.errors import NotFound
from switchboard.server.rules.paging import PageTokens
from switchboard.server.rules.validation import (
    Violations,
    check_length,
    check_page_size,
    normalize_email,
)
from switchboard.server.store.base import ReadTx, Store
from switchboard.server.store.event_log import EventFilter, decode_rows
from switchboard.v1 import contacts_pb2, events_pb2

MAX_TYPES = 50
MAX_TYPE = 100
MAX_ID = 100
MAX_HISTORY_PAGE = 1000


def _check_types(v: Violations, types: list[str]) -> tuple[str, ...]:
    if len(types) > MAX_TYPES:
        v.add("types", f"at most {MAX_TYPES} event types")
    for index, name in enumerate(types):
        if not name or len(name) > MAX_TYPE:
            v.add(f"types[{index}]", f"must be 1 to {MAX_TYPE} characters, e.g. contact.updated")
    return tuple(dict.fromkeys(types))


class EventService:
    """Reads the event log: streams and contact histories."""

    def __init__(self, store: Store, tokens: PageTokens) -> None:
        self._store = store
        self._tokens = tokens

    async def stream(
        self, req: events_pb2.StreamEventsRequest
    ) -> AsyncIterator[events_pb2.StreamEventsResponse]:
        """The backlog after the request's cursor (or time), then new events as they come."""
        plan = await self._plan(req)
        if plan is None:
            return
        async for response in stream(self._store, plan):
            yield response

    async def _plan(self, req: events_pb2.StreamEventsRequest) -> StreamPlan | None:
        v = Violations()
        types = _check_types(v, list(req.types))
        check_length(v, "contact_id", req.contact_id, MAX_ID)
        if req.after_cursor < 0:
            v.add("after_cursor", "must not be negative")
        if req.after_cursor and req.HasField("since"):
            v.add("since", "set either after_cursor (to resume) or since, not both")
        since = to_us(req.since) if req.HasField("since") else 0
        until = to_us(req.until) if req.HasField("until") else 0
        if until and since and until <= since:
            v.add("until", "must be after since")
        v.raise_if_any()
        after = req.after_cursor
        if since:
            after = await self._store.read(lambda tx: tx.event_seq_before(since))
        stop_at = 0
        if req.stop_at_head:
            stop_at = await self._store.read(lambda tx: tx.last_event_seq())
            if stop_at <= after:
                return None  # nothing to send
        flt = EventFilter(types, req.contact_id, until)
        # Events older than the gap grace are all committed: the horizon need not walk
        # the log up to them one cursor at a time.
        old = now_us() - int(GAP_GRACE_S * 1_000_000)
        settled = await self._store.read(lambda tx: tx.event_seq_before(old))
        return StreamPlan(after, flt, req.include_redacted, stop_at, settled)

    async def history(
        self, req: events_pb2.GetContactHistoryRequest
    ) -> events_pb2.GetContactHistoryResponse:
        """A live contact's events, newest first, one page."""
        v = Violations()
        which = req.WhichOneof("lookup")
        if which is None:
            v.add("lookup", "set contact_id or email")
        check_length(v, "contact_id", req.contact_id, MAX_ID)
        size = check_page_size(v, req.page_size, 100, MAX_HISTORY_PAGE)
        types = _check_types(v, list(req.types))
        email = normalize_email(req.email) if which == "email" else ""
        v.raise_if_any()

        def contact_of(tx: ReadTx) -> contacts_pb2.Contact | None:
            return (
                tx.contact_by_id(req.contact_id)
                if which == "contact_id"
                else (tx.contact_by_email(email))
            )

        contact = await self._store.read(contact_of, point=True)
        if contact is None:
            # An erased person is gone from every history, as from every other read.
            raise NotFound(f"no contact with {which} {req.contact_id or email!r}")
        scope = ("GetContactHistory", contact.id, *types)
        cursor = self._tokens.decode(req.page_token, scope, v)
        v.raise_if_any()
        before = cursor[0] if cursor else 0

        def read(tx: ReadTx) -> list[events_pb2.Event]:
            rows = tx.contact_event_rows(contact.id, before, size + 1, types)
            return decode_rows(tx, rows, keep_redacted=False).events

        events = await self._store.read(read)
        resp = events_pb2.GetContactHistoryResponse(events=events[:size])
        if len(events) > size:
            resp.next_page_token = self._tokens.encode((events[size - 1].cursor, ""), scope)
        return resp
