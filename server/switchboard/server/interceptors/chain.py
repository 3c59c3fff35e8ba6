"""One interceptor that runs every guard of a call and maps its errors, in one wrapper.

Each guard (trace id, metrics, authentication, rate limit, authorization, concurrency) says,
per method, what to run when a call starts (`Entry`); that step may refuse the call by
raising a `SwitchboardError`, and may return an `Exit` to run when the call ends. The chain
wraps each method once, the first time it is called, with one function that runs the
entries in order, the handler, the error mapping and then the exits in reverse order.

Why one wrapper rather than one interceptor per guard: with each guard its own interceptor
and async context manager, a cached GetContact cost 196 µs of server CPU; with this chain,
178 µs (the bare grpc.aio echo server: about 140; see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from switchboard.server.interceptors.errors import abort_with

Handler = Any  # grpc.RpcMethodHandler: generic only in the type stubs
Context = grpc.aio.ServicerContext[Any, Any]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]
Exit = Callable[[Context, BaseException | None], None]
"""Runs when the call ends, with the exception it ended with (None on success)."""

#: A refused call's request stream is read, and dropped, until the client stops sending
#: (no message for DRAIN_QUIET_S, or its end), for at most DRAIN_S, before the refusal goes
#: out: a status that reached the client while it was still writing came out of grpc.aio as
#: INTERNAL ("Internal error from Core": its send failed) instead of the refusal (a read-only
#: key's 3,000-item UpsertContacts stream: at least one of ten calls, in each of 3 runs). A
#: windowed client (ours waits for answers) goes quiet after one window.
DRAIN_QUIET_S = 0.02
DRAIN_S = 1.0


@dataclass(frozen=True, slots=True)
class Entry:
    """What a guard runs as a call starts: `enter(context)` returns an `Exit` or None, and
    refuses the call by raising. `is_async`: `enter` returns an awaitable (authentication
    may fetch keys); the others are plain calls, which cost less per call."""

    enter: Callable[[Context], Any]
    is_async: bool = False


class Guard(Protocol):
    """A per-call check or scope; see the module docstring."""

    def entry_for(self, method: str) -> Entry | None:
        """What to run for calls to `method` (`/pkg.Service/Method`), or None for nothing."""


def service_of(method: str) -> str:
    """`/pkg.Service/Method` → `pkg.Service`."""
    return method.lstrip("/").partition("/")[0]


def call_status(context: Context, error: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with, as seen from an `Exit`: the code it was aborted with
    (the chain maps every exception through abort), else CANCELLED or OK."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


class GuardChain(grpc.aio.ServerInterceptor):
    """Runs `guards` (outermost first) around every call and maps exceptions to statuses.

    Known errors become their status (see `interceptors.errors`); anything else is logged
    and becomes INTERNAL. grpc.aio asks interceptors for a handler on every call; the
    wrapped handler is built on a method's first call and reused after that. Unknown
    methods (no handler) are not remembered.
    """

    def __init__(self, guards: Sequence[Guard]) -> None:
        self._guards = tuple(guards)
        self._by_method: dict[str, Handler] = {}

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method = details.method
        found = self._by_method.get(method)
        if found is not None:
            return found
        handler = await continuation(details)
        if handler is None:
            return None
        wrapped = self.guarded(method, handler)
        self._by_method[method] = wrapped
        return wrapped

    def guarded(self, method: str, handler: Handler) -> Handler:
        """`handler` with every call run through this chain's guards and error mapping.

        The Connect endpoint (`api.connect`) wraps its handlers here too, so both protocols
        share the guards' state: one rate-limit bucket and one concurrency count per server.
        """
        entries = tuple(e for g in self._guards if (e := g.entry_for(method)) is not None)
        return wrap_handler(handler, method, entries)


def wrap_handler(handler: Handler, method: str, entries: tuple[Entry, ...]) -> Handler:
    """The same handler, with each call run through `entries` and the error mapping."""
    args = (handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _awaited(handler.unary_unary, method, entries), *args
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _awaited(handler.stream_unary, method, entries, drains=True), *args
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _streaming(handler.unary_stream, method, entries), *args
        )
    return grpc.stream_stream_rpc_method_handler(
        _streaming(handler.stream_stream, method, entries, drains=True), *args
    )


def _streaming(
    behavior: Any, method: str, entries: tuple[Entry, ...], drains: bool = False
) -> Any:
    """A streaming handler is either an async generator that yields its responses or a
    coroutine that sends them with `context.write` (the standard health servicer's Watch).
    grpc.aio tells the two apart by `inspect.iscoroutinefunction`, so the wrapper must be
    of the same kind as the handler it wraps."""
    if inspect.iscoroutinefunction(behavior):
        return _awaited(behavior, method, entries, drains)
    return _stream(behavior, method, entries, drains)


async def _enter(entries: tuple[Entry, ...], context: Context, exits: list[Exit]) -> None:
    for entry in entries:
        done = (await entry.enter(context)) if entry.is_async else entry.enter(context)
        if done is not None:
            exits.append(done)


async def _drain(requests: AsyncIterator[Any]) -> None:
    """Read a refused call's requests until the client stops sending (see DRAIN_S)."""
    loop = asyncio.get_running_loop()
    try:
        pending = aiter(requests)
    except TypeError:  # not a stream after all (a Connect call read whole)
        return
    until = loop.time() + DRAIN_S
    while (left := until - loop.time()) > 0:
        try:
            await asyncio.wait_for(anext(pending), min(DRAIN_QUIET_S, left))
        except (StopAsyncIteration, TimeoutError):
            return
        except Exception:  # the stream broke: nothing more will come
            return


def _leave(exits: list[Exit], context: Context, error: BaseException | None) -> None:
    for done in reversed(exits):
        done(context, error)


def _awaited(
    behavior: Callable[..., Awaitable[Any]],
    method: str,
    entries: tuple[Entry, ...],
    drains: bool = False,
) -> Callable[..., Awaitable[Any]]:
    async def guarded(request: Any, context: Context) -> Any:
        exits: list[Exit] = []
        error: BaseException | None = None
        entered = False
        try:
            if entries:
                await _enter(entries, context, exits)
            entered = True
            return await behavior(request, context)
        except grpc.aio.AbortError as exc:
            error = exc
            raise
        except Exception as exc:
            error = exc
            if drains and not entered:
                await _drain(request)
            await abort_with(exc, context, method)
        except asyncio.CancelledError as exc:
            error = exc
            raise
        finally:
            if exits:
                _leave(exits, context, error)

    return guarded


def _stream(
    behavior: Callable[..., AsyncIterator[Any]],
    method: str,
    entries: tuple[Entry, ...],
    drains: bool = False,
) -> Callable[..., AsyncIterator[Any]]:
    async def guarded(request: Any, context: Context) -> AsyncIterator[Any]:
        exits: list[Exit] = []
        error: BaseException | None = None
        entered = False
        try:
            if entries:
                await _enter(entries, context, exits)
            entered = True
            async for item in behavior(request, context):
                yield item
        except grpc.aio.AbortError as exc:
            error = exc
            raise
        except Exception as exc:
            error = exc
            if drains and not entered:
                await _drain(request)
            await abort_with(exc, context, method)
        except BaseException as exc:  # cancelled, or the generator closed early
            error = exc
            raise
        finally:
            if exits:
                _leave(exits, context, error)

    return guarded
