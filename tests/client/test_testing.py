"""`switchboard.client.testing.FakeSwitchboard`, used as a caller's tests would use it."""

from __future__ import annotations

import grpc
import pytest

from switchboard.client import (
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
    UnavailableError,
)
from switchboard.client.testing import FakeSwitchboard
from switchboard.v1 import campaigns_pb2, contacts_pb2, leads_pb2


async def test_contacts_are_stored_merged_and_listed() -> None:
    async with FakeSwitchboard() as fake, fake.client() as sb:
        first = await sb.contacts.upsert(email="Ada@Example.com", lists=["news"])
        second = await sb.contacts.upsert(email="ada@example.com", lists=["vip"], company="AE")
        same = await sb.contacts.get(id=first.contact.id)
        page = await sb.contacts.list(list="vip")

    assert first.created
    assert not second.created
    assert (same.version, list(same.lists), same.company) == (2, ["news", "vip"], "AE")
    assert [c.email for c in page.contacts] == ["ada@example.com"]
    assert fake.contact("ada@example.com") == same
    assert len(fake.requests("UpsertContact")) == 2


async def test_import_counts_created_updated_unchanged_and_failed() -> None:
    async with FakeSwitchboard() as fake, fake.client() as sb:
        await sb.contacts.upsert(email="old@example.com", first_name="Old")
        summary = await sb.contacts.import_(
            [
                [{"email": "new@example.com"}, {"email": "old@example.com", "first_name": "Old"}],
                [{"email": "old@example.com", "first_name": "New"}, {"email": "broken"}],
            ]
        )

    assert (summary.received, summary.created, summary.updated) == (4, 1, 1)
    assert (summary.unchanged, summary.failed) == (1, 1)
    assert [(e.index, e.code) for e in summary.errors] == [(3, "INVALID_ARGUMENT")]
    [call] = fake.requests("ImportContacts")
    assert len(call) == 2  # the two batches of the one call


async def test_errors_are_the_clients_typed_errors_with_field_violations() -> None:
    async with FakeSwitchboard() as fake, fake.client() as sb:
        with pytest.raises(InvalidArgumentError) as caught:
            await sb.contacts.upsert(first_name="No email")
        with pytest.raises(NotFoundError):
            await sb.contacts.get(email="nobody@example.com")

    assert [v.field for v in caught.value.field_violations] == ["contact.email"]


async def test_a_trigger_runs_every_step_and_records_the_run() -> None:
    async with FakeSwitchboard() as fake, fake.client() as sb:
        run = await sb.campaigns.trigger("purchase.completed", email="buyer@example.com")
        watched = [r async for r in sb.campaigns.watch(run.id)]
        triggers = await sb.campaigns.list_triggers()
        with pytest.raises(NotFoundError, match="configured"):
            await sb.campaigns.trigger("no.such.event", email="buyer@example.com")

    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    assert [s.connector for s in run.steps] == ["crm", "recommendations", "analytics"]
    assert [r.status for r in watched] == [campaigns_pb2.RUN_STATUS_SUCCEEDED]
    buyer = fake.contact("buyer@example.com")
    assert buyer is not None
    assert fake.runs[run.id].contact_id == buyer.id
    assert [t.event for t in triggers] == [
        "lead.status_updated",
        "newsletter.signup",
        "purchase.completed",
    ]


async def test_leads_score_per_activity() -> None:
    async with FakeSwitchboard() as fake, fake.client() as sb:
        await sb.contacts.upsert(email="lead@example.com")
        for _ in range(3):
            await sb.leads.record_activity(email="lead@example.com", type="page_view")
        lead = await sb.leads.score(email="lead@example.com")

    assert (lead.score, lead.activity_count, lead.grade) == (30, 3, leads_pb2.LEAD_GRADE_C)
    assert len(fake.leads) == 1


async def test_injected_failures_and_the_api_key() -> None:
    async with FakeSwitchboard(api_key="sk_test") as fake:
        fake.fail("ListConnectors", grpc.StatusCode.UNAVAILABLE, times=2)
        async with fake.client(retries=0) as sb:
            for _ in range(2):
                with pytest.raises(UnavailableError):
                    await sb.connectors.list()
            connectors = await sb.connectors.list()
        async with fake.client(api_key="wrong") as intruder:
            with pytest.raises(UnauthenticatedError):
                await intruder.connectors.list()

    assert "crm" in [c.name for c in connectors]
    assert fake.calls[0].metadata["authorization"] == "Bearer sk_test"


def test_synchronous_tests_use_it_as_a_context_manager() -> None:
    with (
        FakeSwitchboard(triggers={"welcome": [("esp", "email.send")]}) as fake,
        fake.sync_client() as sb,
    ):
        run = sb.campaigns.trigger("welcome", email="sync@example.com")
        [trigger] = sb.campaigns.list_triggers()

    assert [(s.connector, s.action) for s in run.steps] == [("esp", "email.send")]
    assert trigger.event == "welcome"
    assert list(fake.runs) == [run.id]


async def test_upsert_many_answers_each_item_in_order() -> None:
    async with FakeSwitchboard() as fake, fake.client() as sb:
        answers = [
            a
            async for a in sb.contacts.upsert_many(
                [{"email": "a@example.com"}, {"email": "broken"}, {"email": "b@example.com"}],
                window=2,
            )
        ]

    assert [a.index for a in answers] == [0, 1, 2]
    assert [a.WhichOneof("result") for a in answers] == ["upserted", "error", "upserted"]
    assert answers[1].error.code == "INVALID_ARGUMENT"
    assert fake.contact("b@example.com") == answers[2].upserted.contact
    # A window of 2: the three items went in two messages.
    assert [len(r.upserts) for r in fake.requests("UpsertContacts")] == [2, 1]


def test_upsert_many_from_the_blocking_client_replays_keys() -> None:
    with FakeSwitchboard() as fake, fake.sync_client() as sb:
        first = sb.contacts.upsert(email="k@example.com", first_name="K", idempotency_key="k1")
        [again] = list(
            sb.contacts.upsert_many(
                [
                    contacts_pb2.UpsertContactRequest(
                        contact=contacts_pb2.Contact(email="k@example.com", first_name="K"),
                        idempotency_key="k1",
                    )
                ]
            )
        )

    assert again.idempotency_key == "k1"
    assert again.upserted == first
