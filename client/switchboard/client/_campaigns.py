"""`Switchboard.campaigns`: the CampaignTriggers service."""

# `timeout` is the gRPC deadline, which travels to the server with the call;
# `asyncio.timeout` (what ASYNC109 suggests) cannot do that.
# ruff: noqa: ASYNC109

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from datetime import datetime
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc, contacts_pb2

from ._messages import ContactFields, enum_value, pick, to_contact, to_struct, with_idempotency_key
from ._paging import every_item
from ._transport import USE_DEFAULT, Timeout, Transport

__all__ = ["Campaigns"]


class Campaigns:
    """Trigger campaign runs and follow them."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        channel = transport.channel
        self._stub = campaigns_pb2_grpc.CampaignTriggersStub(channel)

    async def trigger(
        self,
        event: str | None = None,
        *,
        email: str | None = None,
        contact_id: str | None = None,
        contact: contacts_pb2.Contact | ContactFields | None = None,
        attributes: Mapping[str, Any] | Struct | None = None,
        wait: bool = False,
        idempotency_key: str | None = None,
        request: campaigns_pb2.TriggerCampaignRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> campaigns_pb2.Run:
        """Starts the run configured for `event` and returns it.

        Args:
            event: Event name, e.g. `"newsletter.signup"`.
            email: The contact's email (created if new); merged into `contact`.
            contact_id: The contact's id; merged into `contact`.
            contact: More contact fields, merged in as by `contacts.upsert`.
            attributes: JSON-like event data passed to every step.
            wait: Return when the run ends (or the deadline nears), not at once.
            idempotency_key: Key that makes repeats safe; a fresh one by default.
            request: A ready-made request, instead of the keyword fields.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.
        """

        def build() -> campaigns_pb2.TriggerCampaignRequest:
            if event is None:
                raise TypeError("trigger() needs an event")
            return campaigns_pb2.TriggerCampaignRequest(
                event=event,
                contact=_merge_contact(contact, email, contact_id),
                attributes=to_struct(attributes),
                wait_for_completion=wait,
            )

        request = pick(request, build, event, email, contact_id, contact, attributes, wait or None)
        request = with_idempotency_key(request, idempotency_key)
        reply = await self._transport.call(
            self._stub.TriggerCampaign, request, campaigns_pb2.TriggerCampaignResponse, timeout
        )
        return reply.run

    async def get_run(
        self,
        run_id: str | None = None,
        *,
        request: campaigns_pb2.GetRunRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> campaigns_pb2.Run:
        """Returns the run with its steps."""
        request = pick(request, lambda: campaigns_pb2.GetRunRequest(id=run_id), run_id)
        reply = await self._transport.call(
            self._stub.GetRun, request, campaigns_pb2.GetRunResponse, timeout
        )
        return reply.run

    async def list_runs(
        self,
        *,
        contact_id: str | None = None,
        event: str | None = None,
        status: str | int | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        request: campaigns_pb2.ListRunsRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> campaigns_pb2.ListRunsResponse:
        """Returns one page of runs, newest first.

        Args:
            contact_id: Only runs of this contact.
            event: Only runs of this event.
            status: Only runs in this state, e.g. `"failed"`.
            page_size: At most this many (server default 50, at most 500).
            page_token: `next_page_token` of the previous page.
            request: A ready-made request, instead of the keyword fields.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.
        """
        request = pick(
            request,
            lambda: campaigns_pb2.ListRunsRequest(
                contact_id=contact_id,
                event=event,
                status=None if status is None else enum_value(campaigns_pb2.RunStatus, status),
                page_size=page_size,
                page_token=page_token,
            ),
            contact_id,
            event,
            status,
            page_size,
            page_token,
        )
        return await self._transport.call(
            self._stub.ListRuns, request, campaigns_pb2.ListRunsResponse, timeout
        )

    async def iter_runs(
        self,
        *,
        contact_id: str | None = None,
        event: str | None = None,
        status: str | int | None = None,
        page_size: int | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> AsyncGenerator[campaigns_pb2.Run, None]:
        """Iterates over every matching run, newest first, fetching pages as needed.

        Args are those of `list_runs`; `timeout` applies to each page.
        """
        pages = every_item(
            lambda token: self.list_runs(
                contact_id=contact_id,
                event=event,
                status=status,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
            ),
            lambda page: page.runs,
        )
        async for run in pages:
            yield run

    async def list_triggers(
        self,
        event: str | None = None,
        *,
        request: campaigns_pb2.ListTriggersRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> list[campaigns_pb2.Trigger]:
        """Returns the configured triggers with their steps, ordered by event name.

        Args:
            event: Only this event's trigger (NOT_FOUND when none is configured).
            request: A ready-made request, instead of the keyword fields.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.
        """
        request = pick(request, lambda: campaigns_pb2.ListTriggersRequest(event=event), event)
        reply = await self._transport.call(
            self._stub.ListTriggers, request, campaigns_pb2.ListTriggersResponse, timeout
        )
        return list(reply.triggers)

    async def watch(
        self, run_id: str, *, timeout: float | None = None
    ) -> AsyncGenerator[campaigns_pb2.Run, None]:
        """Yields the run as it stands, then after every change, until it ends.

        Args:
            run_id: The run's id.
            timeout: Seconds for the whole stream; no deadline by default.
        """
        replies = self._transport.stream(
            self._stub.WatchRun,
            campaigns_pb2.WatchRunRequest(id=run_id),
            campaigns_pb2.WatchRunResponse,
            timeout,
        )
        # `aclosing` ends the call as soon as the caller stops iterating.
        async with aclosing(replies):
            async for reply in replies:
                yield reply.run


    async def variant_results(
        self,
        event: str,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        conversion_type: str = "",
        timeout: Timeout = USE_DEFAULT,
    ) -> campaigns_pb2.GetVariantResultsResponse:
        """Exposures and conversions per A/B variant of `event`'s trigger.

        Args:
            event: The trigger's event name.
            start_time: Runs started at or after this time; from the beginning if omitted.
            end_time: Runs started before this time; until now if omitted.
            conversion_type: The activity type counted (e.g. `"purchase"`); the trigger's
                configured `conversion` if empty.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.
        """
        request = campaigns_pb2.GetVariantResultsRequest(
            event=event, conversion_type=conversion_type
        )
        if start_time is not None:
            request.start_time.FromDatetime(start_time)
        if end_time is not None:
            request.end_time.FromDatetime(end_time)
        return await self._transport.call(
            self._stub.GetVariantResults,
            request,
            campaigns_pb2.GetVariantResultsResponse,
            timeout,
        )


def _merge_contact(
    contact: contacts_pb2.Contact | ContactFields | None,
    email: str | None,
    contact_id: str | None,
) -> contacts_pb2.Contact:
    merged = contacts_pb2.Contact()
    if contact is not None:
        merged.CopyFrom(to_contact(contact))
    if email is not None:
        merged.email = email
    if contact_id is not None:
        merged.id = contact_id
    return merged
