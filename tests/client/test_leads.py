from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import json_format

from switchboard.client import Switchboard
from switchboard.v1 import leads_pb2

from .fakes import UNKNOWN_DOMAIN, Backend


@pytest.mark.parametrize(
    "activity_type",
    [
        pytest.param("email_click", id="short-name"),
        pytest.param("Email_Click", id="any-case"),
        pytest.param("ACTIVITY_TYPE_EMAIL_CLICK", id="full-name"),
        pytest.param(leads_pb2.ACTIVITY_TYPE_EMAIL_CLICK, id="enum-value"),
    ],
)
async def test_record_activity_maps_the_activity(
    sb: Switchboard, backend: Backend, activity_type: str | int
) -> None:
    when = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)

    reply = await sb.leads.record_activity(
        email="ada@example.com",
        type=activity_type,
        occurred_at=when,
        value=19.99,
        attributes={"campaign": "spring", "links": ["a", "b"], "count": 2, "seen": None},
    )

    request = backend.last("RecordActivity")
    assert request.contact == leads_pb2.ContactRef(email="ada@example.com")
    assert request.activity.type == leads_pb2.ACTIVITY_TYPE_EMAIL_CLICK
    assert request.activity.occurred_at.ToDatetime(tzinfo=UTC) == when
    assert request.activity.value == 19.99
    assert json_format.MessageToDict(request.activity.attributes) == {
        "campaign": "spring",
        "links": ["a", "b"],
        "count": 2.0,
        "seen": None,
    }
    assert len(request.idempotency_key) == 32
    assert reply.activity_id == "a_1"
    assert reply.lead.activity_count == 1


async def test_record_activity_names_the_choices_of_an_unknown_type(sb: Switchboard) -> None:
    with pytest.raises(ValueError, match=r"unknown ActivityType 'tweet'.*email_open"):
        await sb.leads.record_activity(id="c_1", type="tweet")


async def test_record_activity_needs_a_type(sb: Switchboard, backend: Backend) -> None:
    with pytest.raises(TypeError, match="type="):
        await sb.leads.record_activity(id="c_1")

    assert backend.received == []


async def test_score_returns_the_lead(sb: Switchboard, backend: Backend) -> None:
    lead = await sb.leads.score(email="ada@example.com")

    assert backend.last("ScoreLead").contact.email == "ada@example.com"
    assert isinstance(lead, leads_pb2.Lead)
    assert (lead.score, lead.grade) == (42, leads_pb2.LEAD_GRADE_C)


async def test_get_returns_the_lead(sb: Switchboard, backend: Backend) -> None:
    lead = await sb.leads.get(id="c_9")

    assert backend.last("GetLead").contact.id == "c_9"
    assert lead.contact_id == "c_9"


@pytest.mark.parametrize(
    "status",
    [
        pytest.param("mql", id="short-name"),
        pytest.param(leads_pb2.LEAD_STATUS_MQL, id="enum-value"),
    ],
)
async def test_update_status_maps_the_status(
    sb: Switchboard, backend: Backend, status: str | int
) -> None:
    reply = await sb.leads.update_status(email="ada@example.com", status=status, reason="demo")

    request = backend.last("UpdateLeadStatus")
    assert request.status == leads_pb2.LEAD_STATUS_MQL
    assert request.reason == "demo"
    assert request.idempotency_key
    assert reply.lead.status == leads_pb2.LEAD_STATUS_MQL
    assert reply.run_id == "r_status"


REFS: list[Any] = [
    "c_1",
    "ada@example.com",
    leads_pb2.ContactRef(id="c_3"),
    f"ghost{UNKNOWN_DOMAIN}",
    "c_5",
]


async def _async_refs() -> AsyncIterator[Any]:
    for ref in REFS:
        yield ref


@pytest.mark.parametrize(
    "refs",
    [
        pytest.param(lambda: iter(REFS), id="iterable"),
        pytest.param(_async_refs, id="async-iterable"),
    ],
)
async def test_score_many_streams_one_response_per_ref(
    sb: Switchboard, backend: Backend, refs: Any
) -> None:
    replies = [reply async for reply in sb.leads.score_many(refs())]

    assert [r.contact for r in backend.requests("ScoreLeads")] == [
        leads_pb2.ContactRef(id="c_1"),
        leads_pb2.ContactRef(email="ada@example.com"),
        leads_pb2.ContactRef(id="c_3"),
        leads_pb2.ContactRef(email=f"ghost{UNKNOWN_DOMAIN}"),
        leads_pb2.ContactRef(id="c_5"),
    ]
    assert [r.index for r in replies] == [0, 1, 2, 3, 4]
    assert [r.WhichOneof("result") for r in replies] == ["lead", "lead", "lead", "error", "lead"]
    assert replies[3].error.code == "NOT_FOUND"
    assert replies[4].lead.contact_id == "c_5"
