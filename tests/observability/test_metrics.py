"""RPC count and latency by method and status, connector attempts/failures/latency, outbox
depth and age, cache hit ratio — read through the in-memory metric reader."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from switchboard.client import FailedPreconditionError, NotFoundError, Switchboard, SwitchboardError
from switchboard.server.app.build import build_app
from switchboard.server.config.settings import Settings
from switchboard.server.observability.telemetry import Telemetry
from tests.observability.conftest import Observed, eventually


def _by(points: list[Any], **match: object) -> list[Any]:
    return [p for p in points if all(p.attributes.get(k) == v for k, v in match.items())]


async def test_rpc_call_duration_by_method_and_status(observed: Observed) -> None:
    await observed.sb.contacts.upsert(email="ada@example.com")
    with contextlib.suppress(NotFoundError):
        await observed.sb.contacts.get(email="nobody@example.com")
    points = await eventually(
        lambda: observed.points("rpc.server.call.duration"), lambda p: len(p) >= 2
    )
    (metric,) = observed.metrics("rpc.server.call.duration")
    upsert = _by(points, **{"rpc.method": "switchboard.v1.ContactSync/UpsertContact"})
    get = _by(points, **{"rpc.method": "switchboard.v1.ContactSync/GetContact"})
    assert (metric.unit, [p.count for p in upsert], [dict(p.attributes) for p in get]) == (
        "s",
        [1],
        [
            {
                "rpc.system.name": "grpc",
                "rpc.method": "switchboard.v1.ContactSync/GetContact",
                "rpc.response.status_code": "NOT_FOUND",
            }
        ],
    )
    # Seconds, with buckets that tell 0.1, 0.25, 0.5 and 0.75 ms calls apart.
    sub_ms = [b for b in upsert[0].explicit_bounds if b < 0.001]
    assert (sub_ms, 0 < upsert[0].sum < 10.0) == ([0.0001, 0.00025, 0.0005, 0.00075], True)


async def test_connector_attempts_failures_and_latency(observed: Observed) -> None:
    await observed.sb.connectors.invoke("fake", "echo", payload={"a": 1})
    with contextlib.suppress(FailedPreconditionError):  # refused for good: no contact
        await observed.sb.connectors.invoke("crm", "contacts.upsert", payload={})
    attempts = _by(observed.points("switchboard.connector.attempts"), connector="fake")
    failures = _by(observed.points("switchboard.connector.failures"), connector="crm")
    latency = _by(observed.points("switchboard.connector.duration"), connector="fake")
    (duration,) = observed.metrics("switchboard.connector.duration")
    assert (
        [p.value for p in attempts],
        [p.attributes["error"] for p in failures],
        [p.count for p in latency],
        duration.unit,
    ) == ([1], ["permanent"], [1], "s")


async def test_outbox_depth_and_oldest_age(observed: Observed) -> None:
    # Before any trigger the outbox is empty.
    depth = [p.value for p in observed.points("switchboard.outbox.depth")]
    age = [p.value for p in observed.points("switchboard.outbox.oldest_pending_age")]
    assert (depth, age) == ([0], [0.0])


async def test_bulk_backlog_gauge_reads_the_store(observed: Observed) -> None:
    gate = threading.Event()
    store = observed.app.store
    held = [asyncio.create_task(store.write(lambda tx: gate.wait(10), bulk=True))]
    await asyncio.sleep(0.05)  # the first runs and blocks; the second queues behind it
    held.append(asyncio.create_task(store.write(lambda tx: None, bulk=True)))
    await asyncio.sleep(0.1)
    try:
        (backlog,) = [p.value for p in observed.points("switchboard.store.bulk_backlog")]
        assert backlog >= 0.1
    finally:
        gate.set()
        await asyncio.gather(*held)


async def test_outbox_depth_counts_pending_steps(observed: Observed) -> None:
    await observed.app.dispatcher.stop(1.0)  # nothing delivers, so the step stays pending
    await observed.sb.campaigns.trigger("newsletter.signup", email="ada@example.com")
    depth = [p.value for p in observed.points("switchboard.outbox.depth")]
    assert depth == [1]


async def test_cache_hit_ratio(observed: Observed) -> None:
    created = await observed.sb.contacts.upsert(email="ada@example.com")
    # A just-written contact is not cached until its invalidation hold has passed.
    await asyncio.sleep(observed.app.settings.cache.invalidation_hold_s * 2)
    for _ in range(3):
        await observed.sb.contacts.get(id=created.contact.id)
    (ratio,) = observed.points("switchboard.cache.hit_ratio")
    cache = observed.app.cache
    assert ratio.value == cache.hits / (cache.hits + cache.misses)
    assert cache.hits > 0


async def test_steady_lead_answers_are_counted(observed: Observed) -> None:
    created = await observed.sb.contacts.upsert(email="steady@example.com", company="Acme")
    cid = created.contact.id
    hold = observed.app.settings.cache.invalidation_hold_s
    await observed.sb.leads.score(id=cid)  # stores the score
    await asyncio.sleep(hold * 2)
    await observed.sb.leads.score(id=cid)  # the contact and the lead state are cached
    await observed.sb.leads.score(id=cid)  # the rules agree with the stored lead: remembered
    (before,) = [p.value for p in observed.points("switchboard.leads.steady_answers")]
    for _ in range(3):
        await observed.sb.leads.score(id=cid)
    (after,) = [p.value for p in observed.points("switchboard.leads.steady_answers")]
    assert (before, after) == (0, 3)


async def test_refused_calls_are_counted_with_their_status(
    make_settings: Callable[..., Settings],
) -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(TracerProvider(), MeterProvider(metric_readers=[reader]))
    app = await build_app(make_settings(auth={"enabled": True}), telemetry=telemetry)

    def codes() -> list[str]:
        data = reader.get_metrics_data()
        return [
            p.attributes["rpc.response.status_code"]
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "rpc.server.call.duration"
            for p in m.data.data_points
        ]

    await app.start()
    try:
        async with Switchboard(f"127.0.0.1:{app.port}", timeout=5.0) as sb:
            with contextlib.suppress(SwitchboardError):
                await sb.connectors.list()
        refused = await eventually(codes)
    finally:
        await app.stop(grace_s=1.0)

    assert refused == [grpc.StatusCode.UNAUTHENTICATED.name]


async def test_dead_letters_and_breaker_state_gauges(observed: Observed) -> None:
    def states() -> dict[str, float]:
        points = observed.points("switchboard.connector.breaker_state")
        return {p.attributes["connector"]: p.value for p in points}

    assert set(states()) == set(observed.app.connectors)
    assert set(states().values()) == {0}
    assert [p.value for p in observed.points("switchboard.dead_letters")] == [0]
    # No order id: the CRM refuses for good, and the step becomes a dead letter.
    run = await observed.sb.campaigns.trigger(
        "purchase.completed", email="ada@example.com", wait=True
    )
    assert run.steps[0].error
    assert [p.value for p in observed.points("switchboard.dead_letters")] == [1]
    breaker = observed.app.dispatcher.guards["crm"].breaker
    for _ in range(observed.app.settings.dispatch.breaker_failures):
        breaker.failure()
    assert states()["crm"] == 2
    assert states()["esp"] == 0


async def test_runs_steps_and_time_to_delivery(observed: Observed) -> None:
    # crm delivers; the ESP and personalization steps are skipped (no consent).
    await observed.sb.campaigns.trigger("newsletter.signup", email="ada@example.com", wait=True)
    started = [(dict(p.attributes), p.value) for p in observed.points("switchboard.runs.started")]
    finished = [(dict(p.attributes), p.value) for p in observed.points("switchboard.runs.finished")]
    steps = {
        (p.attributes["connector"], p.attributes["status"]): p.value
        for p in observed.points("switchboard.steps")
    }
    (delivery,) = observed.metrics("switchboard.delivery.duration")
    delivered = {p.attributes["connector"]: p.count for p in delivery.data.data_points}
    assert (started, finished, steps, delivery.unit, delivered) == (
        [({"event": "newsletter.signup"}, 1)],
        [({"event": "newsletter.signup", "status": "succeeded"}, 1)],
        {("crm", "succeeded"): 1, ("esp", "skipped"): 1, ("personalization", "skipped"): 1},
        "s",
        {"crm": 1},
    )


async def test_a_replayed_trigger_starts_no_run(observed: Observed) -> None:
    for _ in range(2):
        await observed.sb.campaigns.trigger(
            "newsletter.signup", email="ada@example.com", idempotency_key="k1"
        )
    assert [p.value for p in observed.points("switchboard.runs.started")] == [1]
