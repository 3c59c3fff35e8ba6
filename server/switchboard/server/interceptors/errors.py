"""Maps the error tree to gRPC statuses in one place (`chain.GuardChain` applies it).

Known errors become their status from `errors.STATUS_BY_ERROR`, with field violations as a
google.rpc.BadRequest detail and a known wait before retrying as a google.rpc.RetryInfo.
Anything else is logged with its trace and becomes INTERNAL with a generic message: no
internals reach a caller.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchboard.server.errors import (
    InvalidArgument,
    ResourceExhausted,
    RetryableConnectorError,
    SwitchboardError,
    status_name,
)

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
    if isinstance(exc, ResourceExhausted | RetryableConnectorError) and exc.retry_after_s:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(round(exc.retry_after_s * 1e9))
        detail.details.add().Pack(retry)
    status: grpc.Status = rpc_status.to_status(detail)
    return status


async def abort_with(
    exc: Exception, context: grpc.aio.ServicerContext[Any, Any], method: str
) -> None:
    """Abort the call with the status that `exc` stands for.

    Every INTERNAL is logged once, here, with its traceback, as its message promises: an
    unknown exception, or a project error the status table does not list.
    """
    if isinstance(exc, SwitchboardError) and status_name(exc) != "INTERNAL":
        status = to_status(exc)
        await context.abort(status.code, status.details, status.trailing_metadata)
    log.error("unhandled error in %s", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; the server logged the details")
