"""Consent per destination through a real server: SKIPPED steps, withdrawal, direct calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from switchboard.client import FailedPreconditionError, InvalidArgumentError, Switchboard
from switchboard.server.app.build import App
from switchboard.server.config.settings import defaults
from switchboard.server.connectors.fake import FakeConnector
from switchboard.v1 import campaigns_pb2, connectors_pb2, contacts_pb2

StartApp = Callable[..., Awaitable[App]]
OK = campaigns_pb2.RUN_STATUS_SUCCEEDED
SKIPPED = campaigns_pb2.STEP_STATUS_SKIPPED
SUCCEEDED = campaigns_pb2.STEP_STATUS_SUCCEEDED


def _steps(run: campaigns_pb2.Run) -> list[tuple[str, int, str]]:
    return [(s.connector, s.status, s.skip_reason) for s in run.steps]


async def test_purchase_without_analytics_consent_skips_analytics_and_recommendations(
    sb: Switchboard, app: App
) -> None:
    order = {"order_id": "o-1", "amount": 20, "items": [{"sku": "mug", "quantity": 1}]}
    run = await sb.campaigns.trigger(
        "purchase.completed",
        email="mail-only@example.com",
        contact={"consent": True},  # marketing email only
        attributes=order,
        wait=True,
    )

    assert run.status == OK
    assert _steps(run) == [
        ("crm", SUCCEEDED, ""),
        ("recommendations", SKIPPED, "no consent for personalization"),
        ("analytics", SKIPPED, "no consent for analytics"),
    ]
    assert await app.store.connector_state("analytics").get("conversions", "totals") is None
    assert not (await sb.connectors.list_dead_letters()).dead_letters


async def test_consent_given_per_purpose_lets_those_steps_through(sb: Switchboard) -> None:
    order = {"order_id": "o-2", "amount": 5}
    run = await sb.campaigns.trigger(
        "purchase.completed",
        email="tracked@example.com",
        contact={"consents": {"analytics": True}, "consent_source": "cookie-banner"},
        attributes=order,
        wait=True,
    )

    assert _steps(run) == [
        ("crm", SUCCEEDED, ""),
        ("recommendations", SKIPPED, "no consent for personalization"),
        ("analytics", SUCCEEDED, ""),
    ]
    contact = await sb.contacts.get(email="tracked@example.com")
    assert contact.consents["analytics"].opt_in
    assert contact.consents["analytics"].source == "cookie-banner"
    assert contact.consents["analytics"].HasField("updated_at")


async def test_consent_withdrawn_after_the_trigger_stops_the_steps_still_to_come(
    start_app: StartApp,
) -> None:
    connectors = {
        "slow": {"kind": "fake", "options": {"latency_s": 1.0}},
        "mailer": {"kind": "fake", "purposes": ["email_marketing"]},
    }
    steps = [{"connector": "slow", "action": "echo"}, {"connector": "mailer", "action": "echo"}]
    app = await start_app(connectors=connectors, triggers={"promo": {"steps": steps}})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        opted_in: Any = {"consent": True}
        kept = await sb.campaigns.trigger("promo", email="kept@example.com", contact=opted_in)
        gone = await sb.campaigns.trigger("promo", email="gone@example.com", contact=opted_in)
        # While step 0 is still running: the run's snapshot says yes, the store now says no.
        await sb.contacts.upsert(email="gone@example.com", consent=False, consent_source="unsub")
        kept_run = await _finished(sb, kept.id)
        gone_run = await _finished(sb, gone.id)

    assert _steps(kept_run)[1] == ("mailer", SUCCEEDED, "")
    assert _steps(gone_run)[1] == ("mailer", SKIPPED, "no consent for email_marketing")
    assert gone_run.status == OK
    mailer = app.connectors["mailer"]
    assert isinstance(mailer, FakeConnector)
    assert [ctx.run_id for _, _, ctx in mailer.calls] == [kept.id]


async def _finished(sb: Switchboard, run_id: str) -> campaigns_pb2.Run:
    async for run in sb.campaigns.watch(run_id, timeout=10):
        if run.status in (OK, campaigns_pb2.RUN_STATUS_FAILED):
            return run
    raise AssertionError(f"run {run_id} did not finish")


async def test_settings_override_a_connectors_purposes(start_app: StartApp) -> None:
    connectors: dict[str, Any] = {
        **defaults()["connectors"],
        # Transactional mail: the same kind, serving no marketing purpose.
        "transactional": {"kind": "sandbox_esp", "purposes": []},
        "ads": {"kind": "fake", "purposes": ["advertising"]},
    }
    steps = [
        {"connector": "esp", "action": "lists.subscribe", "params": {"list": "news"}},
        {"connector": "transactional", "action": "lists.subscribe", "params": {"list": "orders"}},
        {"connector": "ads", "action": "echo"},
    ]
    app = await start_app(connectors=connectors, triggers={"order.placed": {"steps": steps}})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        run = await sb.campaigns.trigger(
            "order.placed", email="buyer@example.com", contact={"consent": True}, wait=True
        )
        listed = {c.name: list(c.purposes) for c in await sb.connectors.list()}

    assert _steps(run) == [
        ("esp", SUCCEEDED, ""),
        ("transactional", SUCCEEDED, ""),
        ("ads", SKIPPED, "no consent for advertising"),
    ]
    assert listed["esp"] == ["email_marketing"]
    assert listed["transactional"] == []
    assert listed["ads"] == ["advertising"]


async def test_list_connectors_shows_each_connectors_purposes(sb: Switchboard) -> None:
    listed = {c.name: (c.kind, list(c.purposes)) for c in await sb.connectors.list()}

    assert listed == {
        "analytics": ("sandbox_analytics", ["analytics"]),
        "automation": ("sandbox_automation", []),
        "crm": ("sandbox_crm", []),
        "esp": ("sandbox_esp", ["email_marketing"]),
        "fake": ("fake", []),
        "personalization": ("sandbox_personalization", ["personalization"]),
        "recommendations": ("sandbox_recommendations", ["personalization"]),
        "scoring": ("sandbox_scoring", []),
    }


async def test_erasure_reaches_a_consent_gated_tool(sb: Switchboard, app: App) -> None:
    run = await sb.campaigns.trigger(
        "newsletter.signup", email="forget@example.com", contact={"consent": True}, wait=True
    )
    assert await app.store.connector_state("esp").get("subscriptions", run.contact_id)

    await sb.contacts.delete(id=run.contact_id)
    erasures = await _runs_of(sb, run.contact_id, "contact.erased")

    # The contact has no record (so no consent) left, and the ESP still forgets the person.
    assert _steps(erasures) == [("crm", SUCCEEDED, ""), ("esp", SUCCEEDED, "")]
    assert await app.store.connector_state("esp").get("subscriptions", run.contact_id) is None


async def _runs_of(sb: Switchboard, contact_id: str, event: str) -> campaigns_pb2.Run:
    for _ in range(100):
        runs = (await sb.campaigns.list_runs(contact_id=contact_id, event=event)).runs
        if runs and runs[0].status == OK:
            return runs[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no finished {event} run for {contact_id}")


async def test_a_fallback_is_not_sent_without_consent(start_app: StartApp) -> None:
    connectors = {
        "crmish": {"kind": "fake", "options": {"fail_mode": "permanent", "fail_times": 1}},
        "ads": {"kind": "fake", "purposes": ["advertising"], "options": {"actions": ["push"]}},
    }
    fallback = {"connector": "ads", "action": "push"}
    steps = [{"connector": "crmish", "action": "echo", "fallback": fallback}]
    app = await start_app(connectors=connectors, triggers={"sync": {"steps": steps}})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        run = await sb.campaigns.trigger("sync", email="no-ads@example.com", wait=True)
        letters = (await sb.connectors.list_dead_letters()).dead_letters

    [step] = run.steps
    assert step.status == campaigns_pb2.STEP_STATUS_FAILED
    assert "fallback ads push not sent: no consent for advertising" in step.error
    assert [letter.connector for letter in letters] == ["crmish"]
    ads = app.connectors["ads"]
    assert isinstance(ads, FakeConnector)
    assert not ads.calls


async def _contact(sb: Switchboard, email: str, **fields: Any) -> str:
    return (await sb.contacts.upsert(email=email, **fields)).contact.id


async def test_invoke_without_consent_is_a_failed_precondition(sb: Switchboard, app: App) -> None:
    contact_id = await _contact(sb, "nope@example.com", consent=False)
    payload = {"contact": {"id": contact_id}, "params": {"list": "news"}}

    with pytest.raises(FailedPreconditionError) as caught:
        await sb.connectors.invoke("esp", "lists.subscribe", payload=payload)

    assert caught.value.message == (
        "connector 'esp' serves email_marketing: no consent for email_marketing; record the "
        "contact's consent with UpsertContact (contact.consents), or set skip_consent_check "
        "to call anyway"
    )
    assert await app.store.connector_state("esp").get("subscriptions", contact_id) is None


async def test_invoke_reads_consent_from_the_store_not_the_payload(sb: Switchboard) -> None:
    await _contact(sb, "liar@example.com", consent=False)
    # The payload claims an opt-in; the stored contact (found by email) has none.
    contact = {"email": "LIAR@example.com", "consent": {"opt_in": True}}

    with pytest.raises(FailedPreconditionError, match="no consent for email_marketing"):
        await sb.connectors.invoke("esp", "lists.subscribe", payload={"contact": contact})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param({"params": {"list": "x"}}, "payload.contact must name", id="no-contact"),
        pytest.param(
            {"contact": {"id": "c_00000000000000000000000000"}},
            "contact is erased or unknown",
            id="unknown-contact",
        ),
    ],
)
async def test_invoke_needs_a_stored_contact_to_check(
    sb: Switchboard, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(FailedPreconditionError, match=message):
        await sb.connectors.invoke("analytics", "events.track", payload=payload)


async def test_invoke_goes_with_consent_or_when_none_is_needed(sb: Switchboard) -> None:
    contact_id = await _contact(sb, "yes@example.com", consent=True)
    opted_in = {"contact": {"id": contact_id}, "params": {"list": "news"}}
    unknown = {"contact": {"id": "c_00000000000000000000000000"}, "params": {"list": "news"}}

    subscribed = await sb.connectors.invoke("esp", "lists.subscribe", payload=opted_in)
    # Unsubscribing carries out a withdrawal: it never waits for consent.
    unsubscribed = await sb.connectors.invoke("esp", "lists.unsubscribe", payload=unknown)
    # The CRM serves no consent purpose.
    crm = await sb.connectors.invoke("crm", "contacts.upsert", payload=unknown)

    assert subscribed["subscribed"] is True
    assert unsubscribed["unsubscribed"] is False
    assert crm


async def test_skip_consent_check_is_an_operators_explicit_bypass(
    sb: Switchboard, app: App
) -> None:
    contact_id = await _contact(sb, "repair@example.com")
    request = connectors_pb2.InvokeConnectorRequest(
        connector="esp", action="lists.subscribe", skip_consent_check=True
    )
    request.payload.update({"contact": {"id": contact_id}, "params": {"list": "news"}})

    result = await sb.connectors.invoke(request=request)

    assert result["subscribed"] is True
    events = await app.store.read(lambda tx: tx.events("esp"))
    assert [(kind, b'"consent_check_skipped": true' in body) for kind, body in events] == [
        ("connector.invoked", True)
    ]


async def test_consents_are_stored_and_kept_equal_to_the_marketing_record(
    sb: Switchboard,
) -> None:
    created = (await sb.contacts.upsert(email="both@example.com", consent=True)).contact
    assert created.consents["email_marketing"].opt_in

    request = contacts_pb2.UpsertContactRequest(idempotency_key="withdraw-all")
    request.contact.id = created.id
    request.contact.consents["analytics"].opt_in = True
    request.update_mask.paths.append("consents")
    replaced = (await sb.contacts.upsert(request=request)).contact

    # The map was replaced without email_marketing: marketing consent is withdrawn too.
    assert dict(replaced.consents).keys() == {"analytics"}
    assert not replaced.consent.opt_in


@pytest.mark.parametrize(
    ("consents", "consent", "message"),
    [
        pytest.param({"e-mail": True}, None, "unknown consent purpose(s) 'e-mail'", id="unknown"),
        pytest.param(
            {"email_marketing": False}, True, "they are the same record", id="disagreeing"
        ),
    ],
)
async def test_bad_consents_are_invalid_arguments(
    sb: Switchboard, consents: dict[str, bool], consent: bool | None, message: str
) -> None:
    contact = contacts_pb2.Contact(email="bad@example.com")
    if consent is not None:
        contact.consent.opt_in = consent
    for purpose, opt_in in consents.items():
        contact.consents[purpose].opt_in = opt_in

    with pytest.raises(InvalidArgumentError) as caught:
        await sb.contacts.upsert(request=contacts_pb2.UpsertContactRequest(contact=contact))

    assert [v.field for v in caught.value.field_violations] == ["contact.consents"]
    assert message in caught.value.field_violations[0].description

