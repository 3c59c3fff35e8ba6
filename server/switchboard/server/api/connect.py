"""The same services over the Connect protocol, for callers without gRPC tooling.

`curl -H 'content-type: application/json' -d '{"email": "ada@example.com"}'
http://HOST:PORT/switchboard.v1.ContactSync/GetContact` reaches the same servicer as the
gRPC call. The protocol (unary and streaming, JSON and binary protobuf, errors as Connect
error JSON) is the `connectrpc` library's ASGI application; what is Switchboard's is how
each call reaches the servicer, and it is the gRPC path itself:

- the method handlers are the ones the generated `add_*Servicer_to_server` functions build
  (`decoding.method_handlers`), so no second set of stubs is generated;
- requests stay undecoded bytes until the guards have run, then `decoding` parses them
  (JSON here as well as binary), so a bad body gets INVALID_ARGUMENT with field details and
  an unauthenticated caller learns nothing about the body;
- every call runs through the server's one `GuardChain` (authentication, scopes, rate
  limit, concurrency, error mapping), handed `ConnectCall` in place of the gRPC context; the
  chain's abort becomes a `ConnectError` with the same code, message and details.

connectrpc decodes messages with its own runtime (`protobuf-py`), so its default codecs are
not used: the two codecs here hand the body through and encode the servicers' google.protobuf
replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any

import grpc
import uvicorn
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2
from protobuf.wkt import Any as WireAny

from switchboard.server.api.decoding import (
    Handler,
    Parse,
    binary_parser,
    decoding_handler,
    method_handlers,
)
from switchboard.server.config.security import TlsSettings
from switchboard.server.errors import InvalidArgument, Violation

Guard = Callable[[str, Handler], Handler]
"""Wraps a method's handler in the guard chain (`GuardChain.guarded`)."""

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class JsonBody(bytes):
    """A request body in the protobuf JSON format, parsed only after the guards ran."""


class ConnectCall:
    """What the guard chain and the servicers read from a gRPC context, for a Connect call."""

    __slots__ = ("_code", "_ctx")

    def __init__(self, ctx: RequestContext[Any, Any]) -> None:
        self._ctx = ctx
        self._code: grpc.StatusCode | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        """The request headers (authorization, traceparent), names in lower case."""
        return tuple((k.lower(), v) for k, v in self._ctx.request_headers.allitems())

    def peer(self) -> str:
        """The caller's address in gRPC's form (`ipv4:1.2.3.4:5678`), as the rate limit
        keys anonymous callers by host."""
        address = self._ctx.client_address or "unknown:0"
        host, _, port = address.rpartition(":")
        if ":" in host:
            return f"ipv6:[{host.strip('[]')}]:{port}"
        return f"ipv4:{host}:{port}"

    def time_remaining(self) -> float | None:
        """Seconds left of the caller's `connect-timeout-ms`, or None without one."""
        remaining_ms = self._ctx.timeout_ms
        return None if remaining_ms is None else max(remaining_ms / 1000, 0.0)

    def code(self) -> grpc.StatusCode | None:
        """The status the call was aborted with, if it was."""
        return self._code

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Iterable[tuple[str, str | bytes]] = (),
    ) -> None:
        """Raise the Connect error for a gRPC status (the chain's error mapping calls this)."""
        self._code = code
        raise ConnectError(connect_code(code), details, _details(trailing_metadata))


def connect_code(code: grpc.StatusCode) -> Code:
    """The Connect code of a gRPC status code (same names, but CANCELLED is `canceled`)."""
    if code is grpc.StatusCode.CANCELLED:
        return Code.CANCELED
    return Code[code.name]


def _details(trailing_metadata: Iterable[tuple[str, str | bytes]]) -> list[ErrorDetail]:
    """The rich status's details (e.g. google.rpc.BadRequest), passed on as they are."""
    for key, value in trailing_metadata:
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            return [
                ErrorDetail(WireAny(type_url=d.type_url, value=d.value)) for d in status.details
            ]
    return []


def connect_parser(message_type: type[Message]) -> Parse:
    """Parses a Connect body: JSON (`JsonBody`) or binary; bad input is `InvalidArgument`."""
    binary = binary_parser(message_type)
    name = message_type.DESCRIPTOR.full_name

    def parse(raw: bytes) -> Message:
        if not isinstance(raw, JsonBody):
            return binary(raw)
        message = message_type()
        if not raw.strip():  # an empty body is the empty message, as in the binary format
            return message
        try:
            return json_format.Parse(raw, message)
        except json_format.ParseError as exc:
            why = " ".join(str(exc).split())  # the library's message spans lines
            raise InvalidArgument(
                [Violation("(request)", f"is not a valid {name} JSON message: {why}")],
                message=f"request body is not a valid {name} JSON message: {why}",
            ) from exc

    return parse


class _BinaryCodec:
    """`application/proto`: the body is handed through; replies are serialized."""

    def name(self) -> str:
        return "proto"

    def encode(self, message: Message) -> bytes:
        return message.SerializeToString()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> bytes:
        return bytes(data)


class _JsonCodec:
    """`application/json`: the body is handed through as `JsonBody`; replies use the
    protobuf JSON mapping (lowerCamelCase names, int64 as strings, enums by name)."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json_format.MessageToJson(message, indent=None, ensure_ascii=False).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> JsonBody:
        return JsonBody(data)


class SwitchboardConnectApp(ConnectASGIApplication[None]):
    """One ASGI application for every service; routes `/<service>/<method>`."""

    def __init__(self, endpoints: Mapping[str, Endpoint[Any, Any]], read_max_bytes: int) -> None:
        super().__init__(
            service=None,
            endpoints=lambda _: endpoints,  # type: ignore[arg-type,return-value]
            read_max_bytes=read_max_bytes,
            codecs=[_BinaryCodec(), _JsonCodec()],
        )

    @property
    def path(self) -> str:
        """Mounted at the root: the paths are the gRPC method paths."""
        return "/"


def endpoints_for(
    registrations: Iterable[tuple[Callable[[Any, Any], None], object]],
    methods: Mapping[str, MethodDescriptor],
    guard: Guard,
) -> dict[str, Endpoint[Any, Any]]:
    """Connect endpoints for the servicers, keyed by `/<service>/<method>`.

    `registrations`: (generated `add_*Servicer_to_server`, servicer) pairs; `methods`: the
    contract's method descriptors by the same path.
    """
    found: dict[str, Endpoint[Any, Any]] = {}
    for register, servicer in registrations:
        service, handlers = method_handlers(register, servicer)
        for name, handler in handlers.items():
            path = f"/{service}/{name}"
            guarded = guard(path, decoding_handler(handler, connect_parser))
            found[path] = _endpoint(methods[path], guarded)
    return found


def _endpoint(method: MethodDescriptor, handler: Handler) -> Endpoint[Any, Any]:
    output: type[Message] = message_factory.GetMessageClass(method.output_type)
    info: MethodInfo[Any, Any] = MethodInfo(
        name=method.name,
        service_name=method.containing_service.full_name,
        input=message_factory.GetMessageClass(method.input_type),
        output=output,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=_stream_type(method),
    )

    def reply(result: Message | bytes) -> Message:
        # GetContact answers with encoded bytes (see `decoding.message_field`).
        return output.FromString(result) if isinstance(result, bytes) else result

    if handler.unary_unary:
        call = handler.unary_unary

        async def unary(request: Any, ctx: RequestContext[Any, Any]) -> Message:
            return reply(await call(request, ConnectCall(ctx)))

        return Endpoint.unary(info, unary)
    if handler.stream_unary:
        upload = handler.stream_unary

        async def client_stream(requests: Any, ctx: RequestContext[Any, Any]) -> Message:
            return reply(await upload(requests, ConnectCall(ctx)))

        return Endpoint.client_stream(info, client_stream)
    streamed = handler.unary_stream or handler.stream_stream

    async def stream(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Message]:
        async for item in streamed(request, ConnectCall(ctx)):
            yield reply(item)

    if handler.unary_stream:
        return Endpoint.server_stream(info, stream)
    return Endpoint.bidi_stream(info, stream)


def _stream_type(method: MethodDescriptor) -> StreamType:
    client, server = method.client_streaming, method.server_streaming
    if client and server:
        return StreamType.BIDI_STREAM
    if client:
        return StreamType.CLIENT_STREAM
    return StreamType.SERVER_STREAM if server else StreamType.UNARY


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside the server's own event loop: `serve` owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leaves signals alone (uvicorn would install its own handlers)."""
        yield


class ConnectServer:
    """Serves the Connect application on `listen` (HTTP/1.1, HTTPS with the gRPC port's
    certificate when TLS is on), beside the gRPC server in the same process."""

    def __init__(
        self, app: SwitchboardConnectApp, listen: str, tls: TlsSettings, grace_s: float
    ) -> None:
        self._listen = listen
        ssl_options: dict[str, Any] = {}
        if tls.enabled:
            ssl_options = {
                "ssl_certfile": tls.cert_file,
                "ssl_keyfile": tls.key_file,
                "ssl_ca_certs": tls.client_ca_file or None,
                "ssl_cert_reqs": _cert_reqs(tls),
            }
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=max(math.ceil(grace_s), 1),
            **ssl_options,
        )
        self._server = _EmbeddedUvicorn(config)
        self._task: asyncio.Task[None] | None = None
        # Bound now, like the gRPC port, so that a taken port fails the build (OSError).
        self._socket = _bind(listen)
        self.port = int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Serve on the bound socket."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():  # failed to start: raise its error
                await self._task
                raise OSError(f"the Connect endpoint on {self._listen} did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop accepting; requests in flight finish within the grace period."""
        if self._task is None:
            self._socket.close()
            return
        self._server.should_exit = True
        await self._task
        self._task = None
        self._socket.close()


def _cert_reqs(tls: TlsSettings) -> ssl.VerifyMode:
    if not tls.client_ca_file:
        return ssl.CERT_NONE
    return ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL


def _bind(listen: str) -> socket.socket:
    """A listening socket with SO_REUSEPORT: the workers of `serve --workers N` share it,
    as they share the gRPC port."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host == "localhost":
        host, family = "127.0.0.1", socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, int(port)))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
