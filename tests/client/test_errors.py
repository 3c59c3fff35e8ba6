from __future__ import annotations

import pickle
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchboard.client import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    Switchboard,
    SwitchboardError,
    UnauthenticatedError,
)

from .fakes import Backend, abort_with, rich_status


async def test_field_violations_are_decoded_from_the_status_details(
    sb: Switchboard, backend: Backend
) -> None:
    status = rich_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        "the contact is invalid",
        {"contact.email": "not an email address", "contact.phone": "not in E.164 form"},
    )

    async def reject(request: Any, context: grpc.aio.ServicerContext) -> None:
        await abort_with(context, status)

    backend.before["UpsertContact"] = reject

    with pytest.raises(InvalidArgumentError) as info:
        await sb.contacts.upsert(email="nope", phone="12")

    error = info.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == "the contact is invalid"
    assert error.field_violations == [
        FieldViolation("contact.email", "not an email address"),
        FieldViolation("contact.phone", "not in E.164 form"),
    ]
    assert str(error) == (
        "INVALID_ARGUMENT: the contact is invalid "
        "(contact.email: not an email address; contact.phone: not in E.164 form)"
    )
    assert isinstance(error.__cause__, grpc.aio.AioRpcError)


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        pytest.param(grpc.StatusCode.NOT_FOUND, NotFoundError, id="not-found"),
        pytest.param(grpc.StatusCode.ALREADY_EXISTS, AlreadyExistsError, id="already-exists"),
        pytest.param(
            grpc.StatusCode.FAILED_PRECONDITION, FailedPreconditionError, id="failed-precondition"
        ),
        pytest.param(grpc.StatusCode.ABORTED, AbortedError, id="aborted"),
        pytest.param(grpc.StatusCode.UNAUTHENTICATED, UnauthenticatedError, id="unauthenticated"),
        pytest.param(
            grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError, id="permission-denied"
        ),
        pytest.param(
            grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError, id="resource-exhausted"
        ),
        pytest.param(grpc.StatusCode.INTERNAL, SwitchboardError, id="internal"),
        pytest.param(grpc.StatusCode.UNIMPLEMENTED, SwitchboardError, id="unimplemented"),
    ],
)
async def test_the_error_type_follows_the_status_code(
    sb: Switchboard, backend: Backend, code: grpc.StatusCode, error_type: type[SwitchboardError]
) -> None:
    async def fail(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, "it went wrong")

    backend.before["GetContact"] = fail

    with pytest.raises(SwitchboardError) as info:
        await sb.contacts.get(id="c_1")

    assert type(info.value) is error_type
    assert (info.value.code, info.value.message) == (code, "it went wrong")
    assert info.value.field_violations == []
    assert str(info.value) == f"{code.name}: it went wrong"


async def test_details_of_a_different_status_are_ignored(sb: Switchboard, backend: Backend) -> None:
    stale = rich_status(grpc.StatusCode.INVALID_ARGUMENT, "old", {"contact.email": "bad"})

    async def fail(request: Any, context: grpc.aio.ServicerContext) -> None:
        # E.g. a proxy rewrote the status but kept the trailers of the original one.
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION, "new", trailing_metadata=stale.trailing_metadata
        )

    backend.before["GetContact"] = fail

    with pytest.raises(FailedPreconditionError) as info:
        await sb.contacts.get(id="c_1")

    assert info.value.field_violations == []


def test_errors_survive_pickling() -> None:
    error = InvalidArgumentError(
        grpc.StatusCode.INVALID_ARGUMENT, "bad", [FieldViolation("contact.email", "empty")]
    )

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is InvalidArgumentError
    assert (copy.code, copy.message, copy.field_violations) == (
        error.code,
        error.message,
        error.field_violations,
    )


def test_retry_after_survives_pickling() -> None:
    error = ResourceExhaustedError(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", [], 1.5)

    copy = pickle.loads(pickle.dumps(error))

    assert (type(copy), copy.retry_after) == (ResourceExhaustedError, 1.5)
    assert "retry_after=1.5" in repr(copy)


async def test_retry_after_is_decoded_from_retry_info(sb: Switchboard, backend: Backend) -> None:
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromMilliseconds(2500)
    detail = any_pb2.Any()
    detail.Pack(retry)
    status = rpc_status.to_status(
        status_pb2.Status(
            code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="busy", details=[detail]
        )
    )

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await abort_with(context, status)

    backend.before["GetContact"] = refuse

    with pytest.raises(ResourceExhaustedError) as info:
        await sb.contacts.get(id="c_1")

    assert info.value.retry_after == 2.5
    assert info.value.field_violations == []


async def test_retry_after_is_none_without_retry_info(sb: Switchboard, backend: Backend) -> None:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await abort_with(context, rich_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "too big"))

    backend.before["GetContact"] = refuse

    with pytest.raises(ResourceExhaustedError) as info:
        await sb.contacts.get(id="c_1")

    assert info.value.retry_after is None
