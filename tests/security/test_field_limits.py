"""Field limits added by the security audit: over a limit → INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.message import Message

from switchboard.v1 import campaigns_pb2, connectors_pb2, contacts_pb2

CASES = [
    pytest.param(
        "/switchboard.v1.ContactSync/ListContacts",
        contacts_pb2.ListContactsRequest(list="l" * 500),
        contacts_pb2.ListContactsResponse,
        "list",
        id="list-contacts-list-name",
    ),
    pytest.param(
        "/switchboard.v1.ContactSync/ListContacts",
        contacts_pb2.ListContactsRequest(page_token="t" * 5000),
        contacts_pb2.ListContactsResponse,
        "page_token",
        id="list-contacts-page-token",
    ),
    pytest.param(
        "/switchboard.v1.CampaignTriggers/ListRuns",
        campaigns_pb2.ListRunsRequest(event="e" * 500),
        campaigns_pb2.ListRunsResponse,
        "event",
        id="list-runs-event",
    ),
    pytest.param(
        "/switchboard.v1.CampaignTriggers/ListRuns",
        campaigns_pb2.ListRunsRequest(contact_id="not-an-id"),
        campaigns_pb2.ListRunsResponse,
        "contact_id",
        id="list-runs-contact-id",
    ),
    pytest.param(
        "/switchboard.v1.Connectors/InvokeConnector",
        connectors_pb2.InvokeConnectorRequest(connector="c" * 500, action="echo"),
        connectors_pb2.InvokeConnectorResponse,
        "connector",
        id="invoke-connector-name",
    ),
    pytest.param(
        "/switchboard.v1.ContactSync/UpsertContact",
        contacts_pb2.UpsertContactRequest(
            contact=contacts_pb2.Contact(email="a@b.io"),
            update_mask={"paths": ["first_name"] * 100},
        ),
        contacts_pb2.UpsertContactResponse,
        "update_mask",
        id="upsert-mask-paths",
    ),
]


@pytest.mark.parametrize(("method", "request_msg", "reply", "field"), CASES)
async def test_over_limit_names_the_field(
    channel: grpc.aio.Channel,
    method: str,
    request_msg: Message,
    reply: type[Message],
    field: str,
) -> None:
    call = channel.unary_unary(method, request_serializer=type(request_msg).SerializeToString)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request_msg, timeout=5.0)
    assert (caught.value.code(), f"{field}:" in (caught.value.details() or "")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        True,
    )


async def test_oversized_import_batch_is_refused(channel: grpc.aio.Channel) -> None:
    batch = contacts_pb2.ImportContactsRequest(
        contacts=[contacts_pb2.Contact(email=f"i{i}@example.com") for i in range(1001)]
    )

    async def batches():  # type: ignore[no-untyped-def]
        yield batch

    call = channel.stream_unary(
        "/switchboard.v1.ContactSync/ImportContacts",
        request_serializer=contacts_pb2.ImportContactsRequest.SerializeToString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(batches(), timeout=10.0)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_many_bad_values_still_fit_in_the_status(channel: grpc.aio.Channel) -> None:
    # 1000 bad list names and a huge bad phone: the details are capped, not a broken trailer.
    contact = contacts_pb2.Contact(email="a@b.io", phone="x" * 100_000, lists=[""] * 1000)
    call = channel.unary_unary(
        "/switchboard.v1.ContactSync/UpsertContact",
        request_serializer=contacts_pb2.UpsertContactRequest.SerializeToString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(contacts_pb2.UpsertContactRequest(contact=contact), timeout=5.0)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unknown_activity_type_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    # Found by the property test: activity.type = -1 (proto3 enums are open) was INTERNAL.
    raw = b"\x12\x0b\x08" + b"\xff" * 9 + b"\x01"
    call = channel.unary_unary("/switchboard.v1.LeadScoring/RecordActivity")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(raw, timeout=5.0)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
