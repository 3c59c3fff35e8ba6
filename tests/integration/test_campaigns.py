"""CampaignTriggers: the three reference flows, runs, streams, retries and fallbacks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from switchboard.client import InvalidArgumentError, NotFoundError, Switchboard
from switchboard.server.app.build import App
from switchboard.server.config.settings import defaults
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.errors import RetryableConnectorError
from switchboard.v1 import campaigns_pb2

Run = campaigns_pb2.Run
StartApp = Callable[..., Awaitable[App]]
OK = campaigns_pb2.RUN_STATUS_SUCCEEDED


async def test_newsletter_signup_flow(sb: Switchboard, app: App) -> None:
    run = await sb.campaigns.trigger(
        "newsletter.signup",
        email="new@example.com",
        contact={
            "first_name": "Nia",
            "consent": True,
            "consents": {"personalization": True},
            "consent_source": "footer-form",
        },
        wait=True,
    )
    assert run.status == OK
    assert [(s.connector, s.action, s.status) for s in run.steps] == [
        ("crm", "contacts.upsert", campaigns_pb2.STEP_STATUS_SUCCEEDED),
        ("esp", "lists.subscribe", campaigns_pb2.STEP_STATUS_SUCCEEDED),
        ("personalization", "offers.show", campaigns_pb2.STEP_STATUS_SUCCEEDED),
    ]
    assert run.steps[1].result["list"] == "newsletter"
    assert run.steps[2].result["offer"] == "WELCOME10"
    contact = await sb.contacts.get(email="new@example.com")
    assert contact.first_name == "Nia"
    assert contact.id == run.contact_id
    crm = await app.store.connector_state("crm").get("contacts", contact.id)
    assert crm is not None


async def test_signup_without_consent_skips_the_marketing_steps(sb: Switchboard, app: App) -> None:
    # Was: a FAILED run and a dead letter for the subscribe step (the ESP refused), and
    # the personalization step went out anyway. Now nothing is sent without consent.
    run = await sb.campaigns.trigger("newsletter.signup", email="noconsent@example.com", wait=True)

    assert run.status == OK
    assert [(s.connector, s.status, s.skip_reason, s.attempts) for s in run.steps] == [
        ("crm", campaigns_pb2.STEP_STATUS_SUCCEEDED, "", 1),
        ("esp", campaigns_pb2.STEP_STATUS_SKIPPED, "no consent for email_marketing", 0),
        ("personalization", campaigns_pb2.STEP_STATUS_SKIPPED, "no consent for personalization", 0),
    ]
    assert not run.steps[1].error
    assert not (await sb.connectors.list_dead_letters()).dead_letters
    assert await app.store.connector_state("esp").get("subscriptions", run.contact_id) is None
    assert await app.store.connector_state("personalization").get("shown", run.contact_id) is None


async def test_signup_falls_back_to_default_offer(start_app: StartApp) -> None:
    connectors = {
        **defaults()["connectors"],
        "personalization": {"kind": "fake", "options": {"actions": ["offers.show"]}},
    }
    app = await start_app(connectors=connectors)
    fake = app.connectors["personalization"]
    assert isinstance(fake, FakeConnector)
    fake.script("offers.show", *[RetryableConnectorError("503 from vendor")] * 5)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger(
            "newsletter.signup", email="fb@example.com", contact={"consent": True}, wait=True
        )
    offer = run.steps[2]
    assert offer.status == campaigns_pb2.STEP_STATUS_FALLBACK
    assert offer.attempts == 5
    assert offer.result["offer"] == "WELCOME-DEFAULT"
    assert "503 from vendor" in offer.error
    assert run.status == OK
    assert len(fake.calls) == 5
    assert {ctx.idempotency_key for _, _, ctx in fake.calls} == {f"{run.id}:2"}


async def test_transient_failures_are_retried_then_succeed(start_app: StartApp) -> None:
    triggers = {
        "demo.ping": {"steps": [{"connector": "fake", "action": "echo", "params": {"n": 1}}]}
    }
    connectors = {"fake": {"kind": "fake", "options": {"fail_times": 2}}}
    app = await start_app(connectors=connectors, triggers=triggers)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("demo.ping", email="retry@example.com", wait=True)
    step = run.steps[0]
    assert (step.status, step.attempts) == (campaigns_pb2.STEP_STATUS_SUCCEEDED, 3)
    assert step.result["attempt"] == 3
    assert step.result["echo"]["n"] == 1


async def test_exhausted_retries_fail_the_step(start_app: StartApp) -> None:
    triggers = {"demo.ping": {"steps": [{"connector": "fake", "action": "echo"}]}}
    connectors = {"fake": {"kind": "fake", "max_attempts": 3, "options": {"fail_times": 10}}}
    app = await start_app(connectors=connectors, triggers=triggers)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("demo.ping", email="exhaust@example.com", wait=True)
    assert run.status == campaigns_pb2.RUN_STATUS_FAILED
    assert run.steps[0].attempts == 3
    assert "after 3 attempts" in run.steps[0].error
    fake = app.connectors["fake"]
    assert isinstance(fake, FakeConnector)
    assert len(fake.calls) == 3


async def test_purchase_flow(sb: Switchboard) -> None:
    consents = {"consents": {"analytics": True, "personalization": True}}
    await sb.campaigns.trigger(
        "purchase.completed",
        email="other@example.com",
        contact=consents,
        wait=True,
        attributes={
            "order_id": "o-0",
            "amount": 10,
            "items": [{"sku": "mug", "quantity": 1, "price": 10}],
        },
    )
    run = await sb.campaigns.trigger(
        "purchase.completed",
        email="buyer@example.com",
        contact=consents,
        wait=True,
        attributes={
            "order_id": "o-1",
            "amount": 59.5,
            "items": [{"sku": "tee", "quantity": 2, "price": 29.75}],
        },
    )
    assert run.status == OK
    crm, recs, analytics = run.steps
    assert crm.result["purchase_count"] == 1
    assert crm.result["lifetime_value"] == 59.5
    assert list(recs.result["suggestions"]) == ["mug"]
    assert analytics.result["conversions"] == 2
    assert analytics.result["revenue"] == 69.5


async def test_trigger_returns_at_once_and_watch_streams_to_the_end(sb: Switchboard) -> None:
    run = await sb.campaigns.trigger(
        "newsletter.signup", email="watch@example.com", contact={"consent": True}
    )
    assert run.status == campaigns_pb2.RUN_STATUS_PENDING
    assert all(s.status == campaigns_pb2.STEP_STATUS_PENDING for s in run.steps)
    seen = [r async for r in sb.campaigns.watch(run.id, timeout=10)]
    assert seen[-1].status == OK
    done = [sum(s.status == campaigns_pb2.STEP_STATUS_SUCCEEDED for s in r.steps) for r in seen]
    assert done == sorted(done)  # progress only moves forward
    assert await sb.campaigns.get_run(run.id) == seen[-1]


async def test_wait_is_bounded_by_the_deadline(start_app: StartApp) -> None:
    triggers = {"slow.flow": {"steps": [{"connector": "fake", "action": "echo"}]}}
    connectors = {"fake": {"kind": "fake", "timeout_s": 30, "options": {"latency_s": 3.0}}}
    app = await start_app(connectors=connectors, triggers=triggers)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger(
            "slow.flow", email="slow@example.com", wait=True, timeout=0.5
        )
    assert run.status in (campaigns_pb2.RUN_STATUS_PENDING, campaigns_pb2.RUN_STATUS_RUNNING)


async def test_repeated_idempotency_key_returns_the_first_run(sb: Switchboard) -> None:
    first = await sb.campaigns.trigger(
        "newsletter.signup", email="idem-run@example.com", idempotency_key="signup-1"
    )
    again = await sb.campaigns.trigger(
        "newsletter.signup", email="idem-run@example.com", idempotency_key="signup-1"
    )
    assert again.id == first.id
    runs = await sb.campaigns.list_runs(contact_id=first.contact_id)
    assert [r.id for r in runs.runs] == [first.id]


async def test_list_runs_filters_and_pages(sb: Switchboard) -> None:
    for i in range(3):
        await sb.campaigns.trigger("newsletter.signup", email=f"lr{i}@example.com")
    await sb.campaigns.trigger(
        "purchase.completed", email="lr0@example.com", attributes={"order_id": "x", "amount": 1}
    )
    signups = await sb.campaigns.list_runs(event="newsletter.signup", page_size=2)
    assert len(signups.runs) == 2
    assert signups.next_page_token
    rest = await sb.campaigns.list_runs(
        event="newsletter.signup", page_token=signups.next_page_token
    )
    assert len(rest.runs) == 1
    assert not rest.next_page_token
    created = [r.created_at.ToMicroseconds() for r in [*signups.runs, *rest.runs]]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param(
            {"event": "no.such.event", "email": "a@example.com"}, NotFoundError, id="unknown-event"
        ),
        pytest.param(
            {"event": "bad event!", "email": "a@example.com"},
            InvalidArgumentError,
            id="bad-event-name",
        ),
        pytest.param({"event": "newsletter.signup"}, InvalidArgumentError, id="no-contact"),
        pytest.param(
            {"event": "newsletter.signup", "contact_id": "c_01M847PNZXWYG14T8DV5Y61M89"},
            NotFoundError,
            id="unknown-contact-id",
        ),
    ],
)
async def test_trigger_errors(
    sb: Switchboard, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await sb.campaigns.trigger(**kwargs)


async def test_unknown_event_lists_configured_ones(sb: Switchboard) -> None:
    with pytest.raises(NotFoundError, match=r"newsletter\.signup"):
        await sb.campaigns.trigger("nope", email="a@example.com")


@pytest.mark.parametrize(
    ("run_id", "error"),
    [
        pytest.param("r_01M847PNZXWYG14T8DV5Y61M89", NotFoundError, id="unknown"),
        pytest.param("bogus", InvalidArgumentError, id="malformed"),
    ],
)
async def test_get_run_errors(sb: Switchboard, run_id: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await sb.campaigns.get_run(run_id)
    with pytest.raises(error):
        async for _ in sb.campaigns.watch(run_id, timeout=5):
            pass


async def test_list_triggers_shows_the_configured_flows(sb: Switchboard, app: App) -> None:
    triggers = await sb.campaigns.list_triggers()

    assert [t.event for t in triggers] == sorted(app.settings.triggers)
    [signup] = await sb.campaigns.list_triggers("newsletter.signup")
    assert [(s.index, s.connector, s.action) for s in signup.steps] == [
        (0, "crm", "contacts.upsert"),
        (1, "esp", "lists.subscribe"),
        (2, "personalization", "offers.show"),
    ]
    assert signup.steps[2].fallback == "result"
    assert signup.description


async def test_list_triggers_of_an_unknown_event_is_not_found(sb: Switchboard) -> None:
    with pytest.raises(NotFoundError, match=r"newsletter\.signup"):
        await sb.campaigns.list_triggers("no.such.event")
