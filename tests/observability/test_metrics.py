"""RPC count and latency by method and status, connector attempts/failures/latency, outbox
depth and age, cache hit ratio — read through the in-memory metric reader."""

from __future__ import annotations

import contextlib
from typing import Any

from switchboard.client import FailedPreconditionError, NotFoundError
from tests.observability.conftest import Observed


def _by(points: list[Any], **match: object) -> list[Any]:
    return [p for p in points if all(p.attributes.get(k) == v for k, v in match.items())]


async def test_rpc_count_and_latency_by_method_and_status(observed: Observed) -> None:
    await observed.sb.contacts.upsert(email="ada@example.com")
    with contextlib.suppress(NotFoundError):
        await observed.sb.contacts.get(email="nobody@example.com")
    calls = observed.points("rpc.server.calls")
    ok = _by(calls, **{"rpc.method": "UpsertContact", "rpc.grpc.status_code": 0})
    not_found = _by(calls, **{"rpc.method": "GetContact", "rpc.grpc.status_code": 5})
    latency = _by(observed.points("rpc.server.duration"), **{"rpc.method": "UpsertContact"})
    assert ([p.value for p in ok], [p.value for p in not_found], [p.count for p in latency]) == (
        [1],
        [1],
        [1],
    )


async def test_connector_attempts_failures_and_latency(observed: Observed) -> None:
    await observed.sb.connectors.invoke("fake", "echo", payload={"a": 1})
    with contextlib.suppress(FailedPreconditionError):  # refused for good: no contact
        await observed.sb.connectors.invoke("crm", "contacts.upsert", payload={})
    attempts = _by(observed.points("switchboard.connector.attempts"), connector="fake")
    failures = _by(observed.points("switchboard.connector.failures"), connector="crm")
    latency = _by(observed.points("switchboard.connector.duration"), connector="fake")
    assert (
        [p.value for p in attempts],
        [p.attributes["error"] for p in failures],
        [p.count for p in latency],
    ) == ([1], ["permanent"], [1])


async def test_outbox_depth_and_oldest_age(observed: Observed) -> None:
    # Before any trigger the outbox is empty.
    depth = [p.value for p in observed.points("switchboard.outbox.depth")]
    age = [p.value for p in observed.points("switchboard.outbox.oldest_pending_age")]
    assert (depth, age) == ([0], [0.0])


async def test_outbox_depth_counts_pending_steps(observed: Observed) -> None:
    await observed.app.dispatcher.stop(1.0)  # nothing delivers, so the step stays pending
    await observed.sb.campaigns.trigger("newsletter.signup", email="ada@example.com")
    depth = [p.value for p in observed.points("switchboard.outbox.depth")]
    assert depth == [1]


async def test_cache_hit_ratio(observed: Observed) -> None:
    created = await observed.sb.contacts.upsert(email="ada@example.com")
    for _ in range(3):
        await observed.sb.contacts.get(id=created.contact.id)
    (ratio,) = observed.points("switchboard.cache.hit_ratio")
    cache = observed.app.cache
    assert ratio.value == cache.hits / (cache.hits + cache.misses)
    assert cache.hits > 0
