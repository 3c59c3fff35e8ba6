"""Wraps any method handler in a guard: an async context entered around the whole call.

A guard may refuse the call by aborting the context on entry (the handler then never runs)
and sees the call end on exit, for all four call shapes. Interceptors built on it pass calls
through unchanged otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

Handler = Any  # grpc.RpcMethodHandler: generic only in the type stubs
Context = grpc.aio.ServicerContext[Any, Any]
Guard = Callable[[Context], AbstractAsyncContextManager[None]]


def wrap_handler(handler: Handler, guard: Guard) -> Handler:
    """The same handler with each call run inside `guard(context)`."""
    args = (handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, guard), *args)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_unary(handler.stream_unary, guard), *args)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_stream(handler.unary_stream, guard), *args)
    return grpc.stream_stream_rpc_method_handler(_stream(handler.stream_stream, guard), *args)


def _unary(behavior: Callable[..., Awaitable[Any]], guard: Guard) -> Callable[..., Awaitable[Any]]:
    async def guarded(request: Any, context: Context) -> Any:
        async with guard(context):
            return await behavior(request, context)

    return guarded


def _stream(
    behavior: Callable[..., AsyncIterator[Any]], guard: Guard
) -> Callable[..., AsyncIterator[Any]]:
    async def guarded(request: Any, context: Context) -> AsyncIterator[Any]:
        async with guard(context):
            async for item in behavior(request, context):
                yield item

    return guarded


class MethodCache:
    """Wrapped handlers by method name. A guard depends only on the method, so each method
    is wrapped once and later calls skip both the rest of the chain and the wrapping.

    grpc.aio asks every interceptor for a handler on every call; without this, each layer
    rebuilt its handler per call. Unknown methods (no handler) are not remembered.
    """

    def __init__(self) -> None:
        self._by_method: dict[str, Handler] = {}

    async def get(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
        wrap: Callable[[Handler, str], Handler],
    ) -> Handler | None:
        """The cached handler for `details.method`, wrapping it on first use."""
        method = details.method
        found = self._by_method.get(method)
        if found is not None:
            return found
        handler = await continuation(details)
        if handler is None:
            return None
        wrapped = wrap(handler, method)
        self._by_method[method] = wrapped
        return wrapped


class GuardInterceptor(grpc.aio.ServerInterceptor):
    """An interceptor that runs a guard around calls: subclasses say which guard, per method.

    `guard_for(method)` returns the guard for a method, or None to pass its calls through
    untouched. The wrapped handler is built once per method (see `MethodCache`).
    """

    def __init__(self) -> None:
        self._wrapped = MethodCache()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        return await self._wrapped.get(continuation, details, self._wrap)

    def guard_for(self, method: str) -> Guard | None:
        """The guard for `method`'s calls, or None to leave them alone."""
        raise NotImplementedError

    def _wrap(self, handler: Handler, method: str) -> Handler:
        guard = self.guard_for(method)
        return handler if guard is None else wrap_handler(handler, guard)


def service_of(method: str) -> str:
    """`/pkg.Service/Method` → `pkg.Service`."""
    return method.lstrip("/").partition("/")[0]
