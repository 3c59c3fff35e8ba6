"""ContactSync servicer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from switchboard.server.api.decoding import message_field
from switchboard.server.domain.contact_stream import UpsertStream
from switchboard.server.domain.contacts import ContactService
from switchboard.v1 import contacts_pb2, contacts_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]  # the request and response types vary by method


class ContactSyncServicer(contacts_pb2_grpc.ContactSyncServicer):
    """Contacts over gRPC."""

    def __init__(self, contacts: ContactService) -> None:
        self._contacts = contacts

    async def UpsertContact(
        self, request: contacts_pb2.UpsertContactRequest, context: Context
    ) -> contacts_pb2.UpsertContactResponse:
        return await self._contacts.upsert(request)

    async def GetContact(  # type: ignore[override]  # answers with encoded bytes (see `decoding.message_field`)
        self, request: contacts_pb2.GetContactRequest, context: Context
    ) -> bytes:
        return message_field(1, await self._contacts.get_wire(request))

    async def ListContacts(
        self, request: contacts_pb2.ListContactsRequest, context: Context
    ) -> contacts_pb2.ListContactsResponse:
        return await self._contacts.list_page(request)

    async def ImportContacts(
        self, request_iterator: AsyncIterator[contacts_pb2.ImportContactsRequest], context: Context
    ) -> contacts_pb2.ImportContactsResponse:
        return await self._contacts.import_stream(request_iterator, context.time_remaining)

    async def UpsertContacts(
        self, request_iterator: AsyncIterator[contacts_pb2.UpsertContactsRequest], context: Context
    ) -> AsyncIterator[contacts_pb2.UpsertContactsResponse]:
        async for answer in UpsertStream(self._contacts.upsert_batch, request_iterator).answers():
            yield answer

    async def DeleteContact(
        self, request: contacts_pb2.DeleteContactRequest, context: Context
    ) -> contacts_pb2.DeleteContactResponse:
        return await self._contacts.delete(request)
