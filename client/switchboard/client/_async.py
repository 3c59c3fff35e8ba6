"""`Switchboard`: the asynchronous client."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self

import grpc

from ._admin import Admin
from ._campaigns import Campaigns
from ._config import ChannelOptions, TLSConfig, call_metadata, open_channel, resolve_tls
from ._connectors import Connectors
from ._contacts import Contacts
from ._events import Events
from ._leads import Leads
from ._segments import Segments
from ._transport import Transport

__all__ = ["Switchboard"]


class Switchboard:
    """Asynchronous client for a Switchboard server.

    Calls are grouped by service: `contacts`, `leads`, `campaigns`, `connectors`,
    `segments` and `admin`. Failed calls raise `SwitchboardError` (or a subclass chosen by
    status code).
    Calls that fail with UNAVAILABLE are retried by the channel with exponential backoff;
    writes carry an idempotency key so that a retried write is applied once.

    Example:
        ```python
        async with Switchboard("localhost:50051", api_key="...") as sb:
            reply = await sb.contacts.upsert(email="ada@example.com", lists=["newsletter"])
        ```

    Args:
        target: Server address, e.g. `"localhost:50051"`.
        api_key: Sent as `authorization: Bearer <api_key>` on every call.
        metadata: More metadata sent on every call.
        timeout: Default deadline of unary calls in seconds; `None` for none. Streams
            (`import_`, `score_many`, `watch`) have no deadline unless given one.
        retries: Retries after an UNAVAILABLE status, 0 to 4.
        tls: A `TLSConfig`, or `True` for TLS with the system's root certificates;
            plaintext by default.
        root_certificates: Deprecated: use `tls=TLSConfig(root_certificates=...)`.
        client_cert_chain: Deprecated: use `tls=TLSConfig(client_cert_chain=...)`.
        client_private_key: Deprecated: use `tls=TLSConfig(client_private_key=...)`.
        options: More gRPC channel options.
        channel: An open `grpc.aio.Channel` to use instead of `target`; the client does
            not close it, and the retry and TLS arguments do not apply to it.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        api_key: str | None = None,
        metadata: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        timeout: float | None = 10.0,
        retries: int = 3,
        tls: bool | TLSConfig = False,
        root_certificates: bytes | None = None,
        client_cert_chain: bytes | None = None,
        client_private_key: bytes | None = None,
        options: ChannelOptions = (),
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        if channel is not None:
            if target is not None:
                raise TypeError("pass a target or a channel=, not both")
            self._owns_channel = False
        elif target is not None:
            channel = open_channel(
                target,
                retries=retries,
                options=options,
                tls=resolve_tls(tls, root_certificates, client_cert_chain, client_private_key),
            )
            self._owns_channel = True
        else:
            raise TypeError("pass a target or a channel=")
        self.channel = channel
        transport = Transport(channel, timeout=timeout, metadata=call_metadata(api_key, metadata))
        self.contacts = Contacts(transport)
        self.leads = Leads(transport)
        self.campaigns = Campaigns(transport)
        self.connectors = Connectors(transport)
        self.events = Events(transport)
        self.segments = Segments(transport)
        self.admin = Admin(transport)

    async def aclose(self) -> None:
        """Closes the channel (unless it was passed in), cancelling calls in progress."""
        if self._owns_channel:
            await self.channel.close()

    async def close(self) -> None:
        """Deprecated name of `aclose`."""
        warnings.warn(
            "Switchboard.close() is deprecated; use aclose()", DeprecationWarning, stacklevel=2
        )
        await self.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
