"""The embedded analytics adapter: event counters and idempotent conversion totals."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.server.connectors.analytics import AnalyticsConnector
from switchboard.server.connectors.base import InvokeContext, JsonDict
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.errors import PermanentConnectorError


def ctx(key: str) -> InvokeContext:
    return InvokeContext(idempotency_key=key)


@pytest.fixture
def analytics() -> AnalyticsConnector:
    return AnalyticsConnector("analytics", {}, InMemoryState())


async def test_events_are_counted_by_name(analytics: AnalyticsConnector) -> None:
    named = {"event": "purchase.completed", "params": {"name": "checkout"}}
    unnamed = {"event": "purchase.completed"}

    assert await analytics.invoke("events.track", named, ctx("k1")) == {
        "event": "checkout",
        "count": 1,
    }
    assert await analytics.invoke("events.track", named, ctx("k2")) == {
        "event": "checkout",
        "count": 2,
    }
    assert await analytics.invoke("events.track", unnamed, ctx("k3")) == {
        "event": "purchase.completed",
        "count": 1,
    }


async def test_event_without_a_name_fails_permanently(analytics: AnalyticsConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"'params.name'"):
        await analytics.invoke("events.track", {"params": {}}, ctx("k1"))


async def test_conversions_are_counted_once_per_idempotency_key(
    analytics: AnalyticsConnector,
) -> None:
    def body(amount: Any) -> JsonDict:
        return {"attributes": {"amount": amount}}

    first = await analytics.invoke("conversions.track", body(19.99), ctx("k1"))
    retried = await analytics.invoke("conversions.track", body(19.99), ctx("k1"))
    second = await analytics.invoke("conversions.track", body(5), ctx("k2"))
    no_amount = await analytics.invoke("conversions.track", {}, ctx("k3"))

    assert first == {"conversions": 1, "revenue": 19.99}
    assert retried == first
    assert second == {"conversions": 2, "revenue": 24.99}
    assert no_amount == {"conversions": 3, "revenue": 24.99}


@pytest.mark.parametrize(
    "amount",
    [pytest.param("10", id="str"), pytest.param(True, id="bool"), pytest.param([1], id="list")],
)
async def test_non_numeric_amount_fails_permanently(
    analytics: AnalyticsConnector, amount: Any
) -> None:
    body = {"attributes": {"amount": amount}}
    with pytest.raises(PermanentConnectorError, match=r"'attributes.amount'"):
        await analytics.invoke("conversions.track", body, ctx("k1"))


async def test_unknown_action_fails_permanently(analytics: AnalyticsConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"has no action 'pageviews.track'"):
        await analytics.invoke("pageviews.track", {}, ctx("k1"))


def test_options_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"connector 'analytics': option.*'site_id'"):
        AnalyticsConnector("analytics", {"site_id": "x"}, InMemoryState())
