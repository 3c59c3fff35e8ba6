"""Step `when` conditions and A/B variants through a real server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from switchboard.client import InvalidArgumentError, Switchboard
from switchboard.server.app.app import App
from switchboard.server.app.build import StartupError
from switchboard.server.rules.variants import assign
from switchboard.server.store.base import ReadTx
from switchboard.server.store.event_log import EventFilter, decode_rows
from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc, events_pb2, leads_pb2

StartApp = Callable[..., Awaitable[App]]
SKIPPED = campaigns_pb2.STEP_STATUS_SKIPPED
SUCCEEDED = campaigns_pb2.STEP_STATUS_SUCCEEDED
CONNECTORS = {"one": {"kind": "fake"}, "two": {"kind": "fake"}}


def _steps(run: campaigns_pb2.Run) -> list[tuple[str, int, str]]:
    return [(s.connector, s.status, s.skip_reason) for s in run.steps]


async def test_a_false_condition_skips_the_step_and_the_run_succeeds(
    start_app: StartApp,
) -> None:
    steps = [
        {"connector": "one", "action": "echo", "when": "attributes.amount > 100"},
        {"connector": "two", "action": "echo", "when": 'contact.country == "FR"'},
    ]
    app = await start_app(connectors=CONNECTORS, triggers={"order": {"steps": steps}})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        run = await sb.campaigns.trigger(
            "order",
            email="fr@example.com",
            contact={"country": "FR"},
            attributes={"amount": 20},
            wait=True,
        )
        (listed,) = await sb.campaigns.list_triggers("order")
        assert [s.when for s in listed.steps] == [
            "attributes.amount > 100", 'contact.country == "FR"'
        ]
        assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
        assert _steps(run) == [
            ("one", SKIPPED, "condition false: attributes.amount > 100"),
            ("two", SUCCEEDED, ""),
        ]
        assert run.steps[0].attempts == 0
        # Every step skipped: the run ends at once, with no dead letter.
        run = await sb.campaigns.trigger(
            "order",
            email="de@example.com",
            contact={"country": "DE"},
            attributes={"amount": 5},
            wait=True,
        )
        assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
        assert [s.status for s in run.steps] == [SKIPPED, SKIPPED]
        assert run.steps[1].skip_reason == 'condition false: contact.country == "FR"'
        assert not (await sb.connectors.list_dead_letters()).dead_letters


async def test_a_condition_sees_the_lead_as_it_is_when_the_step_is_due(
    start_app: StartApp,
) -> None:
    steps = [
        {"connector": "one", "action": "echo"},
        {"connector": "two", "action": "echo", "when": "lead.score > 0"},
    ]
    app = await start_app(connectors=CONNECTORS, triggers={"visit": {"steps": steps}})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        run = await sb.campaigns.trigger("visit", email="cold@example.com", wait=True)
        assert _steps(run)[1] == ("two", SKIPPED, "condition false: lead.score > 0")
        await sb.contacts.upsert(email="hot@example.com")
        await sb.leads.record_activity(
            email="hot@example.com", type=leads_pb2.ACTIVITY_TYPE_DEMO_REQUEST
        )
        run = await sb.campaigns.trigger("visit", email="hot@example.com", wait=True)
        assert _steps(run)[1] == ("two", SUCCEEDED, "")


@pytest.mark.parametrize(
    ("when", "message"),
    [
        pytest.param(
            "amount > 3",
            "step 1: when 'amount > 3': unknown field 'amount' at 1:1",
            id="unknown-field",
        ),
        pytest.param(
            "contact.country ==",
            "step 1: when 'contact.country ==': syntax error at 1:",
            id="syntax",
        ),
    ],
)
async def test_a_bad_condition_stops_start_up_naming_step_position_and_field(
    start_app: StartApp, when: str, message: str
) -> None:
    steps = [
        {"connector": "one", "action": "echo"},
        {"connector": "two", "action": "echo", "when": when},
    ]
    with pytest.raises(StartupError, match=message.replace("(", r"\(")):
        await start_app(connectors=CONNECTORS, triggers={"order": {"steps": steps}})


VARIANT_TRIGGER: dict[str, Any] = {
    "steps": [{"connector": "one", "action": "echo", "params": {"template": "welcome_a"}}],
    "variants": {"a": 50, "b": {"weight": 50, "params": {"0": {"template": "welcome_b"}}}},
    "conversion": "purchase",
}


async def test_variants_are_assigned_recorded_and_change_params(start_app: StartApp) -> None:
    app = await start_app(connectors=CONNECTORS, triggers={"welcome": VARIANT_TRIGGER})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        (listed,) = await sb.campaigns.list_triggers("welcome")
        assert list(listed.variants) == ["a", "b"]
        seen: dict[str, str] = {}
        for i in range(12):
            run = await sb.campaigns.trigger("welcome", email=f"v{i}@example.com", wait=True)
            assert run.variant == assign("welcome", run.contact_id, {"a": 50, "b": 50})
            echo = run.steps[0].result.fields["echo"].struct_value
            seen[run.variant] = echo.fields["template"].string_value
            again = await sb.campaigns.trigger("welcome", contact_id=run.contact_id, wait=True)
            assert again.variant == run.variant  # the same contact, the same variant
        assert seen == {"a": "welcome_a", "b": "welcome_b"}
        contact_id = run.contact_id

        def read(tx: ReadTx) -> list[events_pb2.Event]:
            rows = tx.event_rows(0, 100_000, EventFilter(contact_id=contact_id))
            return [e for e in decode_rows(tx, rows).events if e.aggregate_id == run.id]

        events = await app.store.read(read)
        started = [e for e in events if e.type == "run.started"]
        assert started[0].details["variant"] == run.variant
        steps = [e for e in events if e.type == "run.step"]
        assert steps
        assert all(e.run_step.variant == run.variant for e in steps)


async def test_a_requested_variant_must_be_configured(start_app: StartApp) -> None:
    app = await start_app(connectors=CONNECTORS, triggers={"welcome": VARIANT_TRIGGER})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        forced = campaigns_pb2.TriggerCampaignRequest(event="welcome", variant="b")
        forced.contact.email = "qa@example.com"
        assert (await sb.campaigns.trigger(request=forced)).variant == "b"
        forced.variant = "c"
        with pytest.raises(InvalidArgumentError, match="'c' is not a variant"):
            await sb.campaigns.trigger(request=forced)


async def test_variant_results_count_exposures_and_conversions_after_exposure(
    start_app: StartApp,
) -> None:
    app = await start_app(connectors=CONNECTORS, triggers={"welcome": VARIANT_TRIGGER})
    async with (
        Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        stub = campaigns_pb2_grpc.CampaignTriggersStub(channel)
        # A purchase before the run is not a conversion of it.
        await sb.contacts.upsert(email="early@example.com")
        await sb.leads.record_activity(email="early@example.com", type="ACTIVITY_TYPE_PURCHASE")
        expected = {"a": [0, 0], "b": [0, 0]}
        for i, email in enumerate(["early@example.com"] + [f"r{i}@example.com" for i in range(9)]):
            req = campaigns_pb2.TriggerCampaignRequest(event="welcome", variant="ab"[i % 2])
            req.contact.email = email
            await sb.campaigns.trigger(request=req)
            expected["ab"[i % 2]][0] += 1
            if i % 3 == 1:
                await sb.leads.record_activity(email=email, type="ACTIVITY_TYPE_PURCHASE")
                expected["ab"[i % 2]][1] += 1
        reply = await stub.GetVariantResults(
            campaigns_pb2.GetVariantResultsRequest(event="welcome")
        )
        got = {r.variant: [r.exposures, r.conversions] for r in reply.results}
        assert got == expected
        assert reply.conversion_type == "purchase"
        rate = reply.results[1].conversion_rate
        assert rate == pytest.approx(expected["b"][1] / expected["b"][0])
        # A range that ends before the runs: nobody exposed.
        early = campaigns_pb2.GetVariantResultsRequest(event="welcome")
        early.end_time.FromSeconds(1)
        reply = await stub.GetVariantResults(early)
        assert [(r.exposures, r.conversions) for r in reply.results] == [(0, 0), (0, 0)]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetVariantResults(campaigns_pb2.GetVariantResultsRequest(event="nope"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_variant_results_of_a_trigger_without_variants(start_app: StartApp) -> None:
    steps = [{"connector": "one", "action": "echo"}]
    app = await start_app(connectors=CONNECTORS, triggers={"plain": {"steps": steps}})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = campaigns_pb2_grpc.CampaignTriggersStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetVariantResults(campaigns_pb2.GetVariantResultsRequest(event="plain"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "has no variants" in (info.value.details() or "")
