"""`Switchboard.leads`: the LeadScoring service."""

# `timeout` is the gRPC deadline, which travels to the server with the call;
# `asyncio.timeout` (what ASYNC109 suggests) cannot do that.
# ruff: noqa: ASYNC109

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeAlias

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.v1 import leads_pb2, leads_pb2_grpc

from ._messages import (
    enum_value,
    lookup,
    pick,
    to_ref,
    to_struct,
    to_timestamp,
    with_idempotency_key,
)
from ._transport import USE_DEFAULT, Timeout, Transport

__all__ = ["LeadRef", "Leads"]

#: A contact id, an email (any string containing `@`), or a `ContactRef`.
LeadRef: TypeAlias = str | leads_pb2.ContactRef


class Leads:
    """Record activities, score leads and move them along their lifecycle.

    Every method finds the contact by exactly one of `id=` and `email=`.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        channel = transport.channel
        self._stub = leads_pb2_grpc.LeadScoringStub(channel)

    async def record_activity(
        self,
        *,
        id: str | None = None,
        email: str | None = None,
        type: str | int | None = None,
        occurred_at: datetime | Timestamp | None = None,
        value: float | None = None,
        attributes: Mapping[str, Any] | Struct | None = None,
        idempotency_key: str | None = None,
        request: leads_pb2.RecordActivityRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> leads_pb2.RecordActivityResponse:
        """Records one activity of a contact and re-scores its lead.

        Args:
            id: The contact's id.
            email: The contact's email.
            type: The activity, e.g. `"email_click"` or `ActivityType.ACTIVITY_TYPE_PURCHASE`.
            occurred_at: When it happened; the server's clock by default.
            value: Monetary value for purchases.
            attributes: Free-form JSON-like details.
            idempotency_key: Key that makes repeats safe; a fresh one by default.
            request: A ready-made request, instead of the keyword fields.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.

        Returns:
            The activity's id and the re-scored lead.
        """

        def build() -> leads_pb2.RecordActivityRequest:
            if type is None:
                raise TypeError("record_activity() needs type=")
            activity = leads_pb2.Activity(
                type=enum_value(leads_pb2.ActivityType, type),
                occurred_at=to_timestamp(occurred_at),
                value=value,
                attributes=to_struct(attributes),
            )
            return leads_pb2.RecordActivityRequest(contact=_ref(id, email), activity=activity)

        request = pick(request, build, id, email, type, occurred_at, value, attributes)
        request = with_idempotency_key(request, idempotency_key)
        return await self._transport.call(
            self._stub.RecordActivity, request, leads_pb2.RecordActivityResponse, timeout
        )

    async def score(
        self,
        *,
        id: str | None = None,
        email: str | None = None,
        request: leads_pb2.ScoreLeadRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> leads_pb2.Lead:
        """Scores the contact's lead now and returns it with its reasons."""
        request = pick(
            request, lambda: leads_pb2.ScoreLeadRequest(contact=_ref(id, email)), id, email
        )
        reply = await self._transport.call(
            self._stub.ScoreLead, request, leads_pb2.ScoreLeadResponse, timeout
        )
        return reply.lead

    async def get(
        self,
        *,
        id: str | None = None,
        email: str | None = None,
        request: leads_pb2.GetLeadRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> leads_pb2.Lead:
        """Returns the stored lead (status and last score) without re-scoring."""
        request = pick(
            request, lambda: leads_pb2.GetLeadRequest(contact=_ref(id, email)), id, email
        )
        reply = await self._transport.call(
            self._stub.GetLead, request, leads_pb2.GetLeadResponse, timeout
        )
        return reply.lead

    async def update_status(
        self,
        *,
        id: str | None = None,
        email: str | None = None,
        status: str | int | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        request: leads_pb2.UpdateLeadStatusRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> leads_pb2.UpdateLeadStatusResponse:
        """Moves the lead to `status` (e.g. `"mql"`) and re-scores it.

        Returns:
            The re-scored lead and the id of the run the change started, if any.
        """

        def build() -> leads_pb2.UpdateLeadStatusRequest:
            if status is None:
                raise TypeError("update_status() needs status=")
            return leads_pb2.UpdateLeadStatusRequest(
                contact=_ref(id, email),
                status=enum_value(leads_pb2.LeadStatus, status),
                reason=reason,
            )

        request = pick(request, build, id, email, status, reason)
        request = with_idempotency_key(request, idempotency_key)
        return await self._transport.call(
            self._stub.UpdateLeadStatus, request, leads_pb2.UpdateLeadStatusResponse, timeout
        )

    def score_many(
        self,
        refs: Iterable[LeadRef] | AsyncIterable[LeadRef],
        *,
        timeout: float | None = None,
    ) -> AsyncGenerator[leads_pb2.ScoreLeadsResponse, None]:
        """Scores many leads over one stream, yielding one response per ref, in order.

        A failed item carries its `error` (an `ItemError`) and the stream goes on.

        Args:
            refs: Contact ids, emails (strings containing `@`) or `ContactRef`s; an iterable
                or an async iterable.
            timeout: Seconds for the whole stream; no deadline by default.
        """
        return self._transport.stream(
            self._stub.ScoreLeads, _score_requests(refs), leads_pb2.ScoreLeadsResponse, timeout
        )


def _ref(id: str | None, email: str | None) -> leads_pb2.ContactRef:
    lookup(id, email)
    return leads_pb2.ContactRef(id=id, email=email)


async def _score_requests(
    refs: Iterable[LeadRef] | AsyncIterable[LeadRef],
) -> AsyncIterator[leads_pb2.ScoreLeadsRequest]:
    if isinstance(refs, AsyncIterable):
        async for ref in refs:
            yield leads_pb2.ScoreLeadsRequest(contact=to_ref(ref))
    else:
        for ref in refs:
            yield leads_pb2.ScoreLeadsRequest(contact=to_ref(ref))
