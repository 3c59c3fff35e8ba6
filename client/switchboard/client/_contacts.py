"""`Switchboard.contacts`: the ContactSync service."""

# `timeout` is the gRPC deadline, which travels to the server with the call;
# `asyncio.timeout` (what ASYNC109 suggests) cannot do that.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import TypeAlias, Unpack

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.v1 import contacts_pb2, contacts_pb2_grpc

from ._messages import (
    ContactFields,
    enum_value,
    lookup,
    pick,
    to_contact,
    to_timestamp,
    with_idempotency_key,
)
from ._paging import every_item
from ._transport import USE_DEFAULT, Timeout, Transport

__all__ = ["Batch", "Contacts", "UpsertItem"]

#: One message of an import: contacts (messages or dicts), or a ready-made request.
Batch: TypeAlias = (
    Sequence[contacts_pb2.Contact | ContactFields] | contacts_pb2.ImportContactsRequest
)

#: One item of `upsert_many`: a contact (message or dict), or a ready-made request.
UpsertItem: TypeAlias = contacts_pb2.Contact | ContactFields | contacts_pb2.UpsertContactRequest

#: Default number of items `upsert_many` sends ahead of their results.
DEFAULT_WINDOW = 256
#: Default number of items `upsert_many` packs into one message, and the server's limit.
DEFAULT_PER_MESSAGE = 100
MAX_PER_MESSAGE = 1000


class Contacts:
    """Create, read, list, import and erase contacts."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        channel = transport.channel
        self._stub = contacts_pb2_grpc.ContactSyncStub(channel)

    async def upsert(
        self,
        *,
        expected_version: int | None = None,
        mode: str | int | None = None,
        update_mask: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        request: contacts_pb2.UpsertContactRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
        **contact: Unpack[ContactFields],
    ) -> contacts_pb2.UpsertContactResponse:
        """Creates or updates a contact, found by `id` or else by `email`.

        Args:
            expected_version: Apply only if the stored version equals it.
            mode: `"upsert"` (default), `"create_only"` or `"update_only"`.
            update_mask: Fields to replace (an empty one is cleared) instead of merging.
            idempotency_key: Key that makes repeats safe; a fresh one by default.
            request: A ready-made request, instead of the keyword fields.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.
            **contact: The contact's fields (see `ContactFields`).

        Returns:
            The stored contact and whether this call created it.
        """
        request = pick(
            request,
            lambda: contacts_pb2.UpsertContactRequest(
                contact=to_contact(contact),
                expected_version=expected_version,
                mode=None if mode is None else enum_value(contacts_pb2.UpsertMode, mode),
                update_mask=None if update_mask is None else FieldMask(paths=update_mask),
            ),
            expected_version,
            mode,
            update_mask,
            *contact.values(),
        )
        request = with_idempotency_key(request, idempotency_key)
        return await self._transport.call(
            self._stub.UpsertContact, request, contacts_pb2.UpsertContactResponse, timeout
        )

    async def get(
        self,
        *,
        id: str | None = None,
        email: str | None = None,
        request: contacts_pb2.GetContactRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> contacts_pb2.Contact:
        """Returns the contact with this `id` or `email`."""
        request = pick(request, lambda: _get_request(id, email), id, email)
        reply = await self._transport.call(
            self._stub.GetContact, request, contacts_pb2.GetContactResponse, timeout
        )
        return reply.contact

    async def delete(
        self,
        *,
        id: str | None = None,
        email: str | None = None,
        idempotency_key: str | None = None,
        request: contacts_pb2.DeleteContactRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> contacts_pb2.DeleteContactResponse:
        """Erases the contact with this `id` or `email`; returns its id and erasure time."""
        request = pick(request, lambda: _delete_request(id, email), id, email)
        request = with_idempotency_key(request, idempotency_key)
        return await self._transport.call(
            self._stub.DeleteContact, request, contacts_pb2.DeleteContactResponse, timeout
        )

    async def import_(
        self,
        batches: Iterable[Batch] | AsyncIterable[Batch],
        *,
        timeout: float | None = None,
    ) -> contacts_pb2.ImportContactsResponse:
        """Streams batches of contacts (at most 1000 each) and returns the import summary.

        Bad rows are reported in the summary's `errors`; they do not fail the call.

        Args:
            batches: Sequences of contacts (messages or dicts), or requests; an iterable
                or an async iterable.
            timeout: Seconds for the whole import; no deadline by default.
        """
        return await self._transport.call(
            self._stub.ImportContacts,
            _import_requests(batches),
            contacts_pb2.ImportContactsResponse,
            timeout,
        )

    async def upsert_many(
        self,
        items: Iterable[UpsertItem] | AsyncIterable[UpsertItem],
        *,
        window: int = DEFAULT_WINDOW,
        per_message: int = DEFAULT_PER_MESSAGE,
        timeout: float | None = None,
    ) -> AsyncGenerator[contacts_pb2.UpsertContactsResult, None]:
        """Creates or updates many contacts over one stream, yielding one result per item, in order.

        Each item is applied as `upsert` would apply it, with its own idempotency key (the
        request's own, else a fresh one; the result echoes it, so a caller can resend the
        unanswered items of a broken stream safely). A failed item's result carries its
        `error` (an `ItemError` with the status code `upsert` would have raised) and the
        stream goes on.

        Args:
            items: Contacts (messages or dicts, upserted in `upsert` mode without a mask),
                or `UpsertContactRequest`s; an iterable or an async iterable.
            window: At most this many items are sent ahead of their results, so reading
                the results slowly slows the sending instead of buffering.
            per_message: Items of a plain iterable packed into one message (fewer, larger
                messages cost the server less per item). Items of an async iterable are
                sent as they come, one per message, so a slow source is never held back.
            timeout: Seconds for the whole stream; no deadline by default.
        """
        if window < 1 or per_message < 1:
            raise ValueError("window and per_message must be at least 1")
        room = asyncio.Semaphore(window)
        pack = 1 if isinstance(items, AsyncIterable) else min(per_message, window, MAX_PER_MESSAGE)

        async def requests() -> AsyncIterator[contacts_pb2.UpsertContactsRequest]:
            message = contacts_pb2.UpsertContactsRequest()
            async for item in _each(items):
                if room.locked() and message.upserts:
                    yield message  # never hold back items while waiting for room
                    message = contacts_pb2.UpsertContactsRequest()
                await room.acquire()
                message.upserts.append(_upsert_request(item))
                if len(message.upserts) >= pack:
                    yield message
                    message = contacts_pb2.UpsertContactsRequest()
            if message.upserts:
                yield message

        answers = self._transport.stream(
            self._stub.UpsertContacts, requests(), contacts_pb2.UpsertContactsResponse, timeout
        )
        try:
            async for answer in answers:
                for result in answer.results:
                    room.release()
                    yield result
        finally:
            await answers.aclose()

    async def iter(
        self,
        *,
        list: str | None = None,
        page_size: int | None = None,
        updated_after: datetime | Timestamp | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> AsyncGenerator[contacts_pb2.Contact, None]:
        """Iterates over every matching contact, fetching pages as needed.

        Args and ordering are those of `list`; `timeout` applies to each page.
        """
        pages = every_item(
            lambda token: self.list(
                list=list,
                page_size=page_size,
                page_token=token,
                updated_after=updated_after,
                timeout=timeout,
            ),
            lambda page: page.contacts,
        )
        async for contact in pages:
            yield contact

    async def list(
        self,
        *,
        list: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        updated_after: datetime | Timestamp | None = None,
        request: contacts_pb2.ListContactsRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> contacts_pb2.ListContactsResponse:
        """Returns one page of contacts, ordered by `updated_at` then `id`.

        Args:
            list: Only contacts on this list.
            page_size: At most this many (server default 100, at most 1000).
            page_token: `next_page_token` of the previous page.
            updated_after: Only contacts changed strictly after this time.
            request: A ready-made request, instead of the keyword fields.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.
        """
        request = pick(
            request,
            lambda: contacts_pb2.ListContactsRequest(
                list=list,
                page_size=page_size,
                page_token=page_token,
                updated_after=to_timestamp(updated_after),
            ),
            list,
            page_size,
            page_token,
            updated_after,
        )
        return await self._transport.call(
            self._stub.ListContacts, request, contacts_pb2.ListContactsResponse, timeout
        )


async def _each(
    items: Iterable[UpsertItem] | AsyncIterable[UpsertItem],
) -> AsyncIterator[UpsertItem]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def _upsert_request(item: UpsertItem) -> contacts_pb2.UpsertContactRequest:
    if isinstance(item, contacts_pb2.UpsertContactRequest):
        return with_idempotency_key(item, None)
    return with_idempotency_key(contacts_pb2.UpsertContactRequest(contact=to_contact(item)), None)


def _get_request(id: str | None, email: str | None) -> contacts_pb2.GetContactRequest:
    lookup(id, email)
    return contacts_pb2.GetContactRequest(id=id, email=email)


def _delete_request(id: str | None, email: str | None) -> contacts_pb2.DeleteContactRequest:
    lookup(id, email)
    return contacts_pb2.DeleteContactRequest(id=id, email=email)


async def _import_requests(
    batches: Iterable[Batch] | AsyncIterable[Batch],
) -> AsyncIterator[contacts_pb2.ImportContactsRequest]:
    if isinstance(batches, AsyncIterable):
        async for batch in batches:
            yield _import_request(batch)
    else:
        for batch in batches:
            yield _import_request(batch)


def _import_request(batch: Batch) -> contacts_pb2.ImportContactsRequest:
    if isinstance(batch, contacts_pb2.ImportContactsRequest):
        return batch
    return contacts_pb2.ImportContactsRequest(contacts=[to_contact(row) for row in batch])
