"""`Switchboard.admin`: the Admin service (operator tasks; needs the `admin` scope)."""

# `timeout` is the gRPC deadline, which travels to the server with the call.
# ruff: noqa: ASYNC109

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from switchboard.v1 import admin_pb2, admin_pb2_grpc

from ._transport import Transport

__all__ = ["Admin"]


class Admin:
    """Operator tasks over the whole database."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._stub = admin_pb2_grpc.AdminStub(transport.channel)

    async def rebuild_read_models(
        self, *, dry_run: bool = False, timeout: float | None = None
    ) -> AsyncGenerator[admin_pb2.RebuildReadModelsResponse, None]:
        """Replays the event log into fresh read models and swaps them in; yields progress.

        The last message has `done` set, once the new models are in place. Stopping early
        (or cancelling) before then leaves the current models as they are.

        Args:
            dry_run: Build and count, but keep the current models.
            timeout: Seconds for the whole rebuild; no deadline by default.
        """
        replies = self._transport.stream(
            self._stub.RebuildReadModels,
            admin_pb2.RebuildReadModelsRequest(dry_run=dry_run),
            admin_pb2.RebuildReadModelsResponse,
            timeout,
        )
        async with aclosing(replies):
            async for reply in replies:
                yield reply
