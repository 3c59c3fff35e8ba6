"""LeadScoring through the real client and a real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from switchboard.client import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Switchboard,
)
from switchboard.v1 import campaigns_pb2, leads_pb2


async def _contact(sb: Switchboard, email: str, **fields: object) -> str:
    return (await sb.contacts.upsert(email=email, **fields)).contact.id  # type: ignore[arg-type]


async def test_activities_raise_the_score_with_reasons(sb: Switchboard) -> None:
    cid = await _contact(sb, "lead@example.com", company="Acme", job_title="VP Marketing")
    base = await sb.leads.score(id=cid)
    # email 2 + company 5 + job_title 3 + title keyword "vp" 12 = 22, grade D
    assert (base.score, base.grade) == (22, leads_pb2.LEAD_GRADE_D)
    assert {r.rule for r in base.reasons} == {
        "profile.email",
        "profile.company",
        "profile.job_title",
        "profile.title_keyword",
    }
    for kind in ("demo_request", "form_submit", "email_click"):
        reply = await sb.leads.record_activity(id=cid, type=kind)
        assert reply.activity_id.startswith("a_")
    lead = await sb.leads.score(email="lead@example.com")
    assert lead.score == 22 + 20 + 10 + 3
    assert lead.grade == leads_pb2.LEAD_GRADE_B
    assert lead.activity_count == 3
    assert lead.reasons[0].rule == "activity.demo_request"
    assert (await sb.leads.get(id=cid)).score == lead.score


async def test_old_activities_decay(sb: Switchboard) -> None:
    cid = await _contact(sb, "decay@example.com")
    old = datetime.now(UTC) - timedelta(days=30)
    reply = await sb.leads.record_activity(id=cid, type="demo_request", occurred_at=old)
    points = {r.rule: r.points for r in reply.lead.reasons}
    assert points["activity.demo_request"] == pytest.approx(10.0, abs=0.05)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"type": 0}, "activity.type", id="unspecified-type"),
        pytest.param({"type": "email_open", "value": -1.0}, "activity.value", id="negative-value"),
        pytest.param(
            {"type": "email_open", "occurred_at": datetime.now(UTC) + timedelta(hours=1)},
            "activity.occurred_at",
            id="future",
        ),
    ],
)
async def test_bad_activity_is_invalid(
    sb: Switchboard, kwargs: dict[str, object], field: str
) -> None:
    cid = await _contact(sb, "bad-activity@example.com")
    with pytest.raises(InvalidArgumentError) as info:
        await sb.leads.record_activity(id=cid, **kwargs)  # type: ignore[arg-type]
    assert [v.field for v in info.value.field_violations] == [field]


async def test_unknown_contact_is_not_found(sb: Switchboard) -> None:
    with pytest.raises(NotFoundError):
        await sb.leads.score(email="nobody@example.com")
    with pytest.raises(NotFoundError):
        await sb.leads.record_activity(email="nobody@example.com", type="page_view")


async def test_status_lifecycle_rescoring_and_follow_up_run(sb: Switchboard) -> None:
    cid = await _contact(sb, "life@example.com")
    new = await sb.leads.get(id=cid)
    assert new.status == leads_pb2.LEAD_STATUS_NEW
    assert new.score == 0
    reply = await sb.leads.update_status(id=cid, status="mql", reason="downloaded whitepaper")
    assert reply.lead.status == leads_pb2.LEAD_STATUS_MQL
    assert reply.lead.score == 2 + 10  # email + status.mql
    assert reply.run_id.startswith("r_")
    seen = [r async for r in sb.campaigns.watch(reply.run_id, timeout=10)]
    run = seen[-1]
    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    scored, followups = run.steps
    assert scored.result["score"] == 12
    assert list(followups.result["started"]) == ["nurture.sequence"]

    with pytest.raises(FailedPreconditionError, match="cannot move from mql to new"):
        await sb.leads.update_status(id=cid, status="new")
    lost = await sb.leads.update_status(id=cid, status="lost")
    assert lost.lead.status == leads_pb2.LEAD_STATUS_LOST
    reopened = await sb.leads.update_status(id=cid, status="new")
    assert reopened.lead.status == leads_pb2.LEAD_STATUS_NEW


async def test_same_status_starts_no_run(sb: Switchboard) -> None:
    cid = await _contact(sb, "same-status@example.com")
    reply = await sb.leads.update_status(id=cid, status="new")
    assert reply.run_id == ""


async def test_missing_status_is_invalid(sb: Switchboard) -> None:
    cid = await _contact(sb, "nostatus@example.com")
    with pytest.raises(InvalidArgumentError) as info:
        await sb.leads.update_status(id=cid, status=0)
    assert [v.field for v in info.value.field_violations] == ["status"]


async def test_bulk_scoring_stream_reports_bad_items_in_place(sb: Switchboard) -> None:
    ids = [await _contact(sb, f"bulk{i}@example.com") for i in range(3)]
    refs = [ids[0], "missing@example.com", ids[1], "not-an-email@", ids[2]]
    replies = [r async for r in sb.leads.score_many(refs)]
    assert [r.index for r in replies] == [0, 1, 2, 3, 4]
    assert [r.WhichOneof("result") for r in replies] == ["lead", "error", "lead", "error", "lead"]
    assert replies[1].error.code == grpc.StatusCode.NOT_FOUND.name
    assert replies[3].error.code == grpc.StatusCode.INVALID_ARGUMENT.name
    assert [r.lead.contact_id for r in replies if r.HasField("lead")] == ids
