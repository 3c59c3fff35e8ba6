"""`Switchboard.connectors`: the Connectors service."""

# `timeout` is the gRPC deadline, which travels to the server with the call;
# `asyncio.timeout` (what ASYNC109 suggests) cannot do that.
# ruff: noqa: ASYNC109

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.v1 import connectors_pb2, connectors_pb2_grpc

from ._messages import pick, to_struct, with_idempotency_key
from ._transport import USE_DEFAULT, Timeout, Transport

__all__ = ["Connectors"]


class Connectors:
    """List the configured connectors and call them directly."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        channel = transport.channel
        # Generated stubs carry no type hints; their methods are typed at `Transport`.
        self._stub = connectors_pb2_grpc.ConnectorsStub(channel)  # type: ignore[no-untyped-call]

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
