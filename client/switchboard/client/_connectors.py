"""`Switchboard.connectors`: the Connectors service."""

# `timeout` is the gRPC deadline, which travels to the server with the call;
# `asyncio.timeout` (what ASYNC109 suggests) cannot do that.
# ruff: noqa: ASYNC109

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from datetime import datetime
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.v1 import connectors_pb2, connectors_pb2_grpc

from ._messages import pick, to_struct, with_idempotency_key
from ._paging import every_item
from ._transport import USE_DEFAULT, Timeout, Transport

__all__ = ["Connectors"]


class Connectors:
    """List the configured connectors and call them directly."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        channel = transport.channel
        self._stub = connectors_pb2_grpc.ConnectorsStub(channel)

    async def list(
        self, *, timeout: Timeout = USE_DEFAULT
    ) -> builtins.list[connectors_pb2.ConnectorInfo]:
        """Returns every configured connector with its actions and health, by name."""
        reply = await self._transport.call(
            self._stub.ListConnectors,
            connectors_pb2.ListConnectorsRequest(),
            connectors_pb2.ListConnectorsResponse,
            timeout,
        )
        return list(reply.connectors)

    async def invoke(
        self,
        connector: str | None = None,
        action: str | None = None,
        *,
        payload: Mapping[str, Any] | Struct | None = None,
        idempotency_key: str | None = None,
        request: connectors_pb2.InvokeConnectorRequest | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> Struct:
        """Calls `action` of `connector` with `payload` and returns its result.

        Args:
            connector: Connector name from configuration.
            action: Action name, e.g. `"contacts.upsert"`.
            payload: The action's JSON-like input.
            idempotency_key: Key that makes repeats safe; a fresh one by default.
            request: A ready-made request, instead of the keyword fields.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.
        """

        def build() -> connectors_pb2.InvokeConnectorRequest:
            if connector is None or action is None:
                raise TypeError("invoke() needs a connector and an action")
            return connectors_pb2.InvokeConnectorRequest(
                connector=connector, action=action, payload=to_struct(payload)
            )

        request = pick(request, build, connector, action, payload)
        request = with_idempotency_key(request, idempotency_key)
        reply = await self._transport.call(
            self._stub.InvokeConnector, request, connectors_pb2.InvokeConnectorResponse, timeout
        )
        return reply.result

    async def list_dead_letters(
        self,
        *,
        connector: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> connectors_pb2.ListDeadLettersResponse:
        """Returns one page of dead letters (steps delivery gave up on), oldest first.

        Args:
            connector: Only this connector's dead letters.
            page_size: At most this many (server default 50, at most 500).
            page_token: `next_page_token` of the previous page.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.
        """
        request = connectors_pb2.ListDeadLettersRequest(
            connector=connector, page_size=page_size, page_token=page_token
        )
        return await self._transport.call(
            self._stub.ListDeadLetters, request, connectors_pb2.ListDeadLettersResponse, timeout
        )

    async def iter_dead_letters(
        self,
        *,
        connector: str | None = None,
        page_size: int | None = None,
        timeout: Timeout = USE_DEFAULT,
    ) -> AsyncGenerator[connectors_pb2.DeadLetter, None]:
        """Iterates over every dead letter, oldest first, fetching pages as needed.

        Args are those of `list_dead_letters`; `timeout` applies to each page.
        """
        pages = every_item(
            lambda token: self.list_dead_letters(
                connector=connector, page_size=page_size, page_token=token, timeout=timeout
            ),
            lambda page: page.dead_letters,
        )
        async for letter in pages:
            yield letter

    async def redrive_dead_letters(
        self,
        ids: Sequence[str] | None = None,
        *,
        connector: str | None = None,
        all: bool = False,
        timeout: Timeout = USE_DEFAULT,
    ) -> builtins.list[connectors_pb2.DeadLetter]:
        """Queues dead letters for delivery again; returns those redriven.

        Choose exactly one: `ids`, `connector`, or `all=True`. Each step keeps its
        idempotency key, gets a fresh attempt budget, and its run continues.

        Args:
            ids: Dead letter ids from `list_dead_letters`.
            connector: Every dead letter of this connector.
            all: Every dead letter.
            timeout: Seconds; `None` for no deadline; the client's default if omitted.
        """
        chosen = (ids is not None) + (connector is not None) + bool(all)
        if chosen != 1:
            raise TypeError("redrive_dead_letters() needs exactly one of ids, connector or all")
        if ids is not None:
            request = connectors_pb2.RedriveDeadLettersRequest(
                ids=connectors_pb2.DeadLetterIds(ids=list(ids))
            )
        elif connector is not None:
            request = connectors_pb2.RedriveDeadLettersRequest(connector=connector)
        else:
            request = connectors_pb2.RedriveDeadLettersRequest(all=True)
        reply = await self._transport.call(
            self._stub.RedriveDeadLetters,
            request,
            connectors_pb2.RedriveDeadLettersResponse,
            timeout,
        )
        return list(reply.redriven)

    async def backfill(
        self,
        connector: str,
        *,
        since: datetime | None = None,
        restart: bool = False,
        history: bool = False,
        segment: str = "",
        timeout: float | None = None,
    ) -> AsyncGenerator[connectors_pb2.BackfillConnectorResponse, None]:
        """Sends every stored contact to `connector`, yielding progress until done.

        Stopping early is safe: calling again continues after the last queued contact
        (or, with `history`, after the last queued event).

        Args:
            connector: The connector's name.
            since: Only contacts changed at or after this time (with `history`: the
                events written at or after it).
            restart: Start over instead of continuing an earlier backfill.
            history: Replay the events since `since` (contact changes, activities and
                purchases), in order, instead of sending each contact's current state.
            segment: With `history`, only this segment's current members.
            timeout: Seconds for the whole stream; no deadline by default.
        """
        mode = (
            connectors_pb2.BackfillMode.BACKFILL_MODE_HISTORY
            if history
            else connectors_pb2.BackfillMode.BACKFILL_MODE_CURRENT_STATE
        )
        request = connectors_pb2.BackfillConnectorRequest(
            connector=connector, restart=restart, mode=mode, segment=segment
        )
        if since is not None:
            request.since.FromDatetime(since)
        replies = self._transport.stream(
            self._stub.BackfillConnector, request, connectors_pb2.BackfillConnectorResponse, timeout
        )
        async with aclosing(replies):
            async for reply in replies:
                yield reply
