"""Erasure leaves nothing of the person: not in answers, not in the database files.

The person is written through every path that can keep their data (contact upsert, trigger
attributes and connector state, activity, lead status reason, connector calls, each with an
idempotency key), then erased with DeleteContact.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from switchboard.server.app.build import App
from switchboard.server.common.timeutil import now_us
from switchboard.server.store.base import IdempotencyRecord, WriteTx
from switchboard.v1 import (
    campaigns_pb2,
    campaigns_pb2_grpc,
    connectors_pb2,
    connectors_pb2_grpc,
    contacts_pb2,
    contacts_pb2_grpc,
    leads_pb2,
    leads_pb2_grpc,
)

EMAIL = "zebedee.quincunx@example.com"
PHONE = "+4915112345678"
FIRST, LAST = "Zebedee", "Quincunx"


def _upsert() -> contacts_pb2.UpsertContactRequest:
    return contacts_pb2.UpsertContactRequest(
        contact=contacts_pb2.Contact(
            email=EMAIL,
            phone=PHONE,
            first_name=FIRST,
            last_name=LAST,
            lists=["newsletter"],
            consent=contacts_pb2.Consent(opt_in=True, source="signup form"),
        ),
        idempotency_key="k1",
    )


async def _erase(channel: grpc.aio.Channel) -> str:
    stub = contacts_pb2_grpc.ContactSyncStub(channel)
    reply = await stub.DeleteContact(contacts_pb2.DeleteContactRequest(email=EMAIL))
    return str(reply.id)


async def test_a_replayed_upsert_after_erasure_is_refused(channel: grpc.aio.Channel) -> None:
    stub = contacts_pb2_grpc.ContactSyncStub(channel)
    first = await stub.UpsertContact(_upsert())
    assert first.created
    await _erase(channel)

    with pytest.raises(grpc.aio.AioRpcError) as replay:
        await stub.UpsertContact(_upsert())
    assert replay.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "erased" in (replay.value.details() or "")
    # The same answer as an upsert of the erased email without a key.
    without_key = _upsert()
    without_key.idempotency_key = ""
    with pytest.raises(grpc.aio.AioRpcError) as plain:
        await stub.UpsertContact(without_key)
    assert plain.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_replayed_trigger_after_erasure_is_refused(channel: grpc.aio.Channel) -> None:
    stub = campaigns_pb2_grpc.CampaignTriggersStub(channel)
    req = campaigns_pb2.TriggerCampaignRequest(
        event="newsletter.signup", contact=_upsert().contact, idempotency_key="t1"
    )
    await stub.TriggerCampaign(req)
    await _erase(channel)

    with pytest.raises(grpc.aio.AioRpcError) as replay:
        await stub.TriggerCampaign(req)
    assert replay.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def _touch_everything(channel: grpc.aio.Channel) -> tuple[str, str]:
    """Write the person through every path that keeps data; return (contact id, run id)."""
    contacts = contacts_pb2_grpc.ContactSyncStub(channel)
    contact = (await contacts.UpsertContact(_upsert())).contact
    triggers = campaigns_pb2_grpc.CampaignTriggersStub(channel)
    signup = campaigns_pb2.TriggerCampaignRequest(
        event="newsletter.signup",
        contact=contacts_pb2.Contact(email=EMAIL),
        idempotency_key="t1",
        wait_for_completion=True,
    )
    signup.attributes.update({"gift_message": f"For {FIRST} {LAST}, {PHONE}"})
    run = (await triggers.TriggerCampaign(signup, timeout=20)).run
    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    leads = leads_pb2_grpc.LeadScoringStub(channel)
    activity = leads_pb2.RecordActivityRequest(
        contact=leads_pb2.ContactRef(email=EMAIL),
        activity=leads_pb2.Activity(type=leads_pb2.ACTIVITY_TYPE_PAGE_VIEW),
        idempotency_key="a1",
    )
    activity.activity.attributes.update({"url": f"https://example.com/?who={FIRST}"})
    await leads.RecordActivity(activity)
    await leads.UpdateLeadStatus(
        leads_pb2.UpdateLeadStatusRequest(
            contact=leads_pb2.ContactRef(id=contact.id),
            status=leads_pb2.LEAD_STATUS_MQL,
            reason=f"{FIRST} {LAST} asked for a demo",
            idempotency_key="s1",
        )
    )
    connectors = connectors_pb2_grpc.ConnectorsStub(channel)
    echo = connectors_pb2.InvokeConnectorRequest(
        connector="fake", action="echo", idempotency_key="i1"
    )
    echo.payload.update({"contact": {"id": contact.id}, "params": {"to": EMAIL}})
    await connectors.InvokeConnector(echo)
    return contact.id, run.id


async def _wait_for_erasure_run(channel: grpc.aio.Channel, contact_id: str) -> None:
    stub = campaigns_pb2_grpc.CampaignTriggersStub(channel)
    done = (campaigns_pb2.RUN_STATUS_SUCCEEDED, campaigns_pb2.RUN_STATUS_FAILED)
    async with asyncio.timeout(20):
        while True:
            listed = await stub.ListRuns(
                campaigns_pb2.ListRunsRequest(contact_id=contact_id, event="contact.erased")
            )
            if listed.runs and all(r.status in done for r in listed.runs):
                return
            await asyncio.sleep(0.05)


def _files_holding(db: Path, needles: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(db.parent.glob(db.name + "*")):
        data = path.read_bytes()
        hits = [n for n in needles if n.encode() in data]
        if hits:
            found[path.name] = hits
    return found


async def test_erased_personal_data_is_not_in_the_database_files(
    app: App, channel: grpc.aio.Channel
) -> None:
    db = Path(app.settings.database.path)
    needles = [EMAIL, PHONE, FIRST, LAST]
    contact_id, run_id = await _touch_everything(channel)
    assert _files_holding(db, needles)  # the data did reach the files

    await _erase(channel)
    await _wait_for_erasure_run(channel, contact_id)

    assert _files_holding(db, needles) == {}
    # The run of the erased person is still there, reduced to what is not about them.
    runs = campaigns_pb2_grpc.CampaignTriggersStub(channel)
    run = (await runs.GetRun(campaigns_pb2.GetRunRequest(id=run_id))).run
    assert run.contact_id == contact_id
    assert not run.attributes.fields


async def test_unattributed_records_naming_the_person_go_and_others_stay(
    app: App, channel: grpc.aio.Channel
) -> None:
    stub = contacts_pb2_grpc.ContactSyncStub(channel)
    contact_id = (await stub.UpsertContact(_upsert())).contact.id

    def seed(tx: WriteTx) -> None:
        # As written before records named their contact: no contact_id, data in the answer.
        for key, response in (("old-email", EMAIL), ("old-id", contact_id), ("other", "x")):
            record = IdempotencyRecord("InvokeConnector", "h", f"answer {response}".encode())
            tx.put_idempotency(key, record, now_us())

    await app.store.write(seed)
    await _erase(channel)

    kept = await app.store.read(
        lambda tx: [k for k in ("old-email", "old-id", "other") if tx.idempotency(k)]
    )
    assert kept == ["other"]
