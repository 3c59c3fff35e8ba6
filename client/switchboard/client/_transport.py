"""Where every call is made: deadline, metadata, and translation of gRPC errors."""

# `timeout` is the gRPC deadline, which travels to the server with the call;
# `asyncio.timeout` (what ASYNC109 suggests) cannot do that.
# ruff: noqa: ASYNC109

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import Any, Final, Literal, TypeAlias, TypeVar, cast

import grpc
from google.protobuf.message import Message

from ._errors import from_rpc_error

__all__ = ["USE_DEFAULT", "Timeout", "Transport"]

R = TypeVar("R", bound=Message)


class _UseDefault(enum.Enum):
    TOKEN = enum.auto()

    def __repr__(self) -> str:
        return "USE_DEFAULT"


#: Marks a `timeout` left to the client's default (`None` means no deadline at all).
USE_DEFAULT: Final = _UseDefault.TOKEN

Timeout: TypeAlias = float | Literal[_UseDefault.TOKEN] | None


class Transport:
    """Makes calls on a channel with the client's metadata and default deadline.

    Methods take the generated stub's multicallable (untyped) and the expected reply type,
    which only serves to type the result.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        timeout: float | None,
        metadata: tuple[tuple[str, str], ...],
    ) -> None:
        self.channel = channel
        self._timeout = timeout
        self._metadata = metadata

    def deadline(self, timeout: Timeout) -> float | None:
        """Returns the timeout in seconds for a call, resolving `USE_DEFAULT`."""
        return self._timeout if timeout is USE_DEFAULT else timeout

    async def call(
        self,
        method: Any,
        request: Message | AsyncIterable[Message] | Iterable[Message],
        reply: type[R],
        timeout: Timeout,
    ) -> R:
        """Makes a call with a single reply (unary, or client-streaming `request`)."""
        try:
            result = await method(request, timeout=self.deadline(timeout), metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        except grpc.aio.UsageError as exc:
            # grpc's own wording ("Channel is closed") names a part the caller never saw.
            raise RuntimeError("the client is closed") from exc
        return cast(R, result)

    async def stream(
        self,
        method: Any,
        request: Message | AsyncIterable[Message] | Iterable[Message],
        reply: type[R],
        timeout: Timeout,
    ) -> AsyncGenerator[R, None]:
        """Makes a call with streamed replies (server-streaming, or bidi `request`).

        The call starts at the first iteration, not when this is called.
        """
        try:
            call = method(request, timeout=self.deadline(timeout), metadata=self._metadata)
        except grpc.aio.UsageError as exc:
            raise RuntimeError("the client is closed") from exc
        try:
            async for message in call:
                yield cast(R, message)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            # A no-op once the stream has ended; when the caller stops early it ends the
            # call now instead of leaving it open until the server finishes.
            call.cancel()
