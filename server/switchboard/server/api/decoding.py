"""Registers servicers so that request bytes are decoded by the project, not by grpcio.

grpcio decodes a request with the handler's `request_deserializer` before any handler code
runs, and answers an undecodable one with UNKNOWN ("Unexpected DecodeError"). `add_servicer`
runs a generated `add_*Servicer_to_server` against a stand-in server to collect its method
handlers, then registers them with a pass-through deserializer: the raw bytes reach the
handler, which parses them here. Bytes that are not a valid message raise `InvalidArgument`
naming the message type, which the error interceptor maps to INVALID_ARGUMENT — on unary and
streaming requests alike.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from switchboard.server.errors import InvalidArgument, Violation

Handler = Any  # grpc.RpcMethodHandler: generic only in the type stubs
Parse = Callable[[bytes], Message]


class _Capture:
    """Stands in for the server in a generated registration call and keeps its handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, Handler] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """Ignored: the same handlers also arrive through `add_registered_method_handlers`."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Handler]) -> None:
        self.service = service
        self.handlers = dict(handlers)


def add_servicer(
    server: grpc.aio.Server, register: Callable[[Any, Any], None], servicer: object
) -> str:
    """Register `servicer` through the generated `register` function, decoding requests here.

    Returns the full service name.
    """
    service, captured = method_handlers(register, servicer)
    handlers = {name: decoding_handler(h) for name, h in captured.items()}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, handlers),)
    )
    server.add_registered_method_handlers(service, handlers)
    return service


def method_handlers(
    register: Callable[[Any, Any], None], servicer: object
) -> tuple[str, dict[str, Handler]]:
    """The full service name and the method handlers (by method name) that the generated
    `register` function would add for `servicer`, as grpcio builds them."""
    capture = _Capture()
    register(servicer, capture)
    return capture.service, capture.handlers


def message_field(number: int, encoded: bytes) -> bytes:
    """A message holding only field `number` set to an already encoded message: what a
    handler returns to answer with bytes it has (a cached contact) without decoding them."""
    size = len(encoded)
    if size < 0x80:  # the usual contact: a one-byte length
        return bytes((number << 3 | 2, size)) + encoded
    head = bytearray([number << 3 | 2])  # wire type 2: length-delimited
    while size > 0x7F:
        head.append(size & 0x7F | 0x80)
        size >>= 7
    head.append(size)
    return bytes(head) + encoded


def _encoder(serialize: Callable[[Message], bytes]) -> Callable[[Message | bytes], bytes]:
    def encode(response: Message | bytes) -> bytes:
        return response if type(response) is bytes else serialize(response)  # type: ignore[arg-type]

    return encode


def decoding_handler(
    handler: Handler, parser: Callable[[type[Message]], Parse] | None = None
) -> Handler:
    """The same handler, taking raw bytes and parsing them with `parser(request type)`
    (default: the binary format, with `InvalidArgument` for bad bytes); it may answer with
    a message or with its encoded bytes (see `message_field`)."""
    # Generated handlers pass `SomeRequest.FromString`, a classmethod bound to the type.
    message_type: type[Message] = handler.request_deserializer.__self__
    parse = (parser or binary_parser)(message_type)
    serialize = _encoder(handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _unary_request(handler.unary_unary, parse), None, serialize
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _unary_request_stream(handler.unary_stream, parse), None, serialize
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _stream_request(handler.stream_unary, parse), None, serialize
        )
    return grpc.stream_stream_rpc_method_handler(
        _stream_request_stream(handler.stream_stream, parse), None, serialize
    )


def binary_parser(message_type: type[Message]) -> Parse:
    """Parses the protobuf binary format; bad bytes raise `InvalidArgument`."""
    name = message_type.DESCRIPTOR.full_name

    def parse(raw: bytes) -> Message:
        try:
            return message_type.FromString(raw)
        except DecodeError as exc:
            raise InvalidArgument(
                [Violation("(request)", f"is not a valid {name} message ({exc})")],
                message=f"request body is not a valid {name} protobuf message",
            ) from exc

    return parse


def _unary_request(
    behavior: Callable[..., Awaitable[Any]], parse: Parse
) -> Callable[..., Awaitable[Any]]:
    async def handle(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return await behavior(parse(raw), context)

    return handle


def _unary_request_stream(behavior: Callable[..., Any], parse: Parse) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(behavior):  # writes with context.write (see chain._streaming)
        return _unary_request(behavior, parse)

    async def handle(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async for item in behavior(parse(raw), context):
            yield item

    return handle


async def _parsed(raws: AsyncIterator[bytes], parse: Parse) -> AsyncIterator[Message]:
    async for raw in raws:
        yield parse(raw)


def _stream_request(
    behavior: Callable[..., Awaitable[Any]], parse: Parse
) -> Callable[..., Awaitable[Any]]:
    async def handle(
        raws: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        return await behavior(_parsed(raws, parse), context)

    return handle


def _stream_request_stream(behavior: Callable[..., Any], parse: Parse) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(behavior):  # writes with context.write (see chain._streaming)
        return _stream_request(behavior, parse)

    async def handle(
        raws: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async for item in behavior(_parsed(raws, parse), context):
            yield item

    return handle
