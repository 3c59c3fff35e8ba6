from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from switchboard.client import ContactFields, Switchboard
from switchboard.v1 import contacts_pb2

from .fakes import Backend


async def test_upsert_maps_contact_fields(sb: Switchboard, backend: Backend) -> None:
    reply = await sb.contacts.upsert(
        email="ada@example.com",
        phone="+14155550100",
        first_name="Ada",
        last_name="Lovelace",
        company="Analytical Engines",
        job_title="Engineer",
        country="GB",
        lists=["newsletter", "beta"],
        attributes={"plan": "pro"},
        consent=True,
        consent_source="web",
    )

    request = backend.last("UpsertContact")
    assert request.contact == contacts_pb2.Contact(
        email="ada@example.com",
        phone="+14155550100",
        first_name="Ada",
        last_name="Lovelace",
        company="Analytical Engines",
        job_title="Engineer",
        country="GB",
        lists=["newsletter", "beta"],
        attributes={"plan": "pro"},
        consent=contacts_pb2.Consent(opt_in=True, source="web"),
    )
    assert not request.HasField("update_mask")
    assert request.mode == contacts_pb2.UPSERT_MODE_UNSPECIFIED
    assert isinstance(reply, contacts_pb2.UpsertContactResponse)
    assert reply.created
    assert reply.contact.id == "c_new"


async def test_upsert_maps_request_options(sb: Switchboard, backend: Backend) -> None:
    await sb.contacts.upsert(
        id="c_1",
        phone="",
        expected_version=3,
        mode="update_only",
        update_mask=["phone", "lists"],
    )

    request = backend.last("UpsertContact")
    assert request.contact.id == "c_1"
    assert request.expected_version == 3
    assert request.mode == contacts_pb2.UPSERT_MODE_UPDATE_ONLY
    assert list(request.update_mask.paths) == ["phone", "lists"]
    assert not request.contact.HasField("consent")


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("create_only", id="short-name"),
        pytest.param("CREATE_ONLY", id="upper-case"),
        pytest.param("UPSERT_MODE_CREATE_ONLY", id="full-name"),
        pytest.param(contacts_pb2.UPSERT_MODE_CREATE_ONLY, id="enum-value"),
        pytest.param(2, id="number"),
    ],
)
async def test_upsert_accepts_mode_names_and_numbers(
    sb: Switchboard, backend: Backend, mode: str | int
) -> None:
    await sb.contacts.upsert(email="ada@example.com", mode=mode)

    assert backend.last("UpsertContact").mode == contacts_pb2.UPSERT_MODE_CREATE_ONLY


async def test_upsert_passes_a_ready_made_request_without_changing_it(
    sb: Switchboard, backend: Backend
) -> None:
    request = contacts_pb2.UpsertContactRequest(contact=contacts_pb2.Contact(email="a@b.c"))

    await sb.contacts.upsert(request=request)

    sent = backend.last("UpsertContact")
    assert sent.contact.email == "a@b.c"
    assert sent.idempotency_key
    assert request.idempotency_key == ""


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        pytest.param({"firstname": "Ada"}, TypeError, id="unknown-field"),
        pytest.param({"consent_source": "web"}, ValueError, id="source-without-consent"),
        pytest.param({"mode": "sometimes"}, ValueError, id="unknown-mode"),
        pytest.param(
            {"request": contacts_pb2.UpsertContactRequest(), "email": "a@b.c"},
            TypeError,
            id="request-and-fields",
        ),
    ],
)
async def test_upsert_rejects_bad_arguments_before_calling(
    sb: Switchboard, backend: Backend, fields: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await sb.contacts.upsert(**fields)

    assert backend.received == []


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        pytest.param({"id": "c_7"}, contacts_pb2.GetContactRequest(id="c_7"), id="by-id"),
        pytest.param(
            {"email": "ada@example.com"},
            contacts_pb2.GetContactRequest(email="ada@example.com"),
            id="by-email",
        ),
        pytest.param(
            {"request": contacts_pb2.GetContactRequest(id="c_8")},
            contacts_pb2.GetContactRequest(id="c_8"),
            id="request",
        ),
    ],
)
async def test_get_returns_the_contact(
    sb: Switchboard,
    backend: Backend,
    lookup: dict[str, Any],
    expected: contacts_pb2.GetContactRequest,
) -> None:
    contact = await sb.contacts.get(**lookup)

    assert backend.last("GetContact") == expected
    assert isinstance(contact, contacts_pb2.Contact)
    assert contact.id in (expected.id, "c_1")


@pytest.mark.parametrize(
    "lookup",
    [
        pytest.param({}, id="neither"),
        pytest.param({"id": "c_1", "email": "a@b.c"}, id="both"),
    ],
)
async def test_get_needs_exactly_one_lookup(sb: Switchboard, lookup: dict[str, str]) -> None:
    with pytest.raises(TypeError, match="exactly one"):
        await sb.contacts.get(**lookup)


async def test_list_maps_filters(sb: Switchboard, backend: Backend) -> None:
    since = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    page = await sb.contacts.list(list="newsletter", page_size=2, updated_after=since)

    request = backend.last("ListContacts")
    assert request.list == "newsletter"
    assert request.page_size == 2
    assert request.updated_after.ToDatetime(tzinfo=UTC) == since
    assert [c.id for c in page.contacts] == ["c_0", "c_1"]
    assert page.next_page_token == "2"


async def test_iter_follows_next_page_token(sb: Switchboard, backend: Backend) -> None:
    ids = [contact.id async for contact in sb.contacts.iter(list="newsletter", page_size=2)]

    assert ids == ["c_0", "c_1", "c_2", "c_3", "c_4"]
    requests = backend.requests("ListContacts")
    assert [r.page_token for r in requests] == ["", "2", "4"]
    assert {(r.list, r.page_size) for r in requests} == {("newsletter", 2)}


def _batches() -> list[list[contacts_pb2.Contact | ContactFields]]:
    return [
        [{"email": "a@example.com", "lists": ["import"]}, contacts_pb2.Contact(email="b@b.c")],
        [{"first_name": "No email"}],
    ]


async def _async_batches() -> AsyncIterator[list[contacts_pb2.Contact | ContactFields]]:
    for batch in _batches():
        yield batch


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param(_batches, id="iterable"),
        pytest.param(_async_batches, id="async-iterable"),
    ],
)
async def test_import_streams_one_request_per_batch(
    sb: Switchboard, backend: Backend, batches: Any
) -> None:
    summary = await sb.contacts.import_(batches())

    (received,) = backend.requests("ImportContacts")
    assert [[c.email for c in batch.contacts] for batch in received] == [
        ["a@example.com", "b@b.c"],
        [""],
    ]
    assert list(received[0].contacts[0].lists) == ["import"]
    assert (summary.received, summary.created, summary.failed) == (3, 2, 1)
    assert summary.errors[0].index == 2


async def test_import_accepts_ready_made_requests(sb: Switchboard, backend: Backend) -> None:
    batches: Iterable[contacts_pb2.ImportContactsRequest] = [
        contacts_pb2.ImportContactsRequest(contacts=[contacts_pb2.Contact(email="a@b.c")])
    ]

    summary = await sb.contacts.import_(batches)

    assert summary.received == 1


@pytest.mark.parametrize(
    ("lookup", "field"),
    [
        pytest.param({"id": "c_1"}, "id", id="by-id"),
        pytest.param({"email": "a@b.c"}, "email", id="by-email"),
    ],
)
async def test_delete_sends_the_lookup_and_a_key(
    sb: Switchboard, backend: Backend, lookup: dict[str, str], field: str
) -> None:
    reply = await sb.contacts.delete(**lookup)

    request = backend.last("DeleteContact")
    assert request.WhichOneof("lookup") == field
    assert len(request.idempotency_key) == 32
    assert isinstance(reply, contacts_pb2.DeleteContactResponse)
