"""Maps the error tree to gRPC statuses in one place.

Known errors become their status from `errors.STATUS_BY_ERROR`, with field violations as a
google.rpc.BadRequest detail. Anything else is logged with its trace and becomes INTERNAL
with a generic message: no internals reach a caller.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchboard.server.errors import InvalidArgument, SwitchboardError, status_name
from switchboard.server.interceptors.wrapping import MethodCache

log = logging.getLogger(__name__)


def to_status(exc: SwitchboardError) -> grpc.Status:
    """The rich status for a known error."""
    name = status_name(exc)
    detail = status_pb2.Status(code=getattr(code_pb2, name), message=exc.message)
    if isinstance(exc, InvalidArgument):
        bad = error_details_pb2.BadRequest()
        for v in exc.violations:
            bad.field_violations.add(field=v.field, description=v.description)
        detail.details.add().Pack(bad)
    status: grpc.Status = rpc_status.to_status(detail)
    return status


async def abort_with(
    exc: Exception, context: grpc.aio.ServicerContext[Any, Any], method: str
) -> None:
    """Abort the call with the status that `exc` stands for."""
    if isinstance(exc, SwitchboardError):
        status = to_status(exc)
        await context.abort(status.code, status.details, status.trailing_metadata)
    log.error("unhandled error in %s", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; the server logged the details")


# Generic only in the type stubs, so the alias must stay a string at run time.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Translates exceptions raised by handlers into statuses, for all four call shapes."""

    def __init__(self) -> None:
        self._wrapped = MethodCache()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        return await self._wrapped.get(continuation, details, _wrap)


def _wrap(handler: Handler, method: str) -> Handler:
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, method),
            handler.request_deserializer,
            handler.response_serializer,
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary(handler.stream_unary, method),
            handler.request_deserializer,
            handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_stream(handler.unary_stream, method),  # type: ignore[arg-type]  # aio: async gen
            handler.request_deserializer,
            handler.response_serializer,
        )
    return grpc.stream_stream_rpc_method_handler(
        _wrap_stream(handler.stream_stream, method),  # type: ignore[arg-type]
        handler.request_deserializer,
        handler.response_serializer,
    )


def _wrap_unary(
    behavior: Callable[..., Awaitable[Any]], method: str
) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(exc, context, method)

    return wrapper


def _wrap_stream(
    behavior: Callable[..., AsyncIterator[Any]], method: str
) -> Callable[..., AsyncIterator[Any]]:
    async def wrapper(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async for item in behavior(request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(exc, context, method)

    return wrapper
