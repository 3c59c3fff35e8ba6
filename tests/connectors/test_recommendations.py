"""The embedded recommendations adapter: popularity, exclusions, limits and idempotency."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.server.connectors.base import InvokeContext, JsonDict
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.recommendations import RecommendationsConnector
from switchboard.server.errors import PermanentConnectorError


def ctx(key: str) -> InvokeContext:
    return InvokeContext(idempotency_key=key)


def payload(contact_id: str, *skus: str) -> JsonDict:
    items = [{"sku": sku, "quantity": 1, "price": 1.0} for sku in skus]
    return {"contact": {"id": contact_id}, "attributes": {"items": items}}


@pytest.fixture
def recs() -> RecommendationsConnector:
    return RecommendationsConnector("recommendations", {"max_suggestions": 2}, InMemoryState())


async def buy(recs: RecommendationsConnector, key: str, contact_id: str, *skus: str) -> Any:
    result = await recs.invoke("suggestions.refresh", payload(contact_id, *skus), ctx(key))
    return result["suggestions"]


async def test_suggests_most_purchased_skus_the_contact_has_not_bought(
    recs: RecommendationsConnector,
) -> None:
    await buy(recs, "k1", "a", "mug", "tea", "pen")
    await buy(recs, "k2", "b", "mug", "tea")
    await buy(recs, "k3", "c", "mug")

    # Popularity: mug 3, tea 2, pen 1. Contact d bought only tea.
    assert await buy(recs, "k4", "d", "tea") == ["mug", "pen"]
    assert await buy(recs, "k5", "e") == ["mug", "tea"]


async def test_ties_are_broken_by_sku(recs: RecommendationsConnector) -> None:
    await buy(recs, "k1", "a", "zebra", "apple", "mango")

    assert await buy(recs, "k2", "b") == ["apple", "mango"]


async def test_a_retried_step_is_counted_once(recs: RecommendationsConnector) -> None:
    await buy(recs, "k1", "a", "pen")
    await buy(recs, "k2", "b", "pen")
    for _ in range(3):
        await buy(recs, "k3", "c", "mug")

    # pen 2, mug 1; had the retries counted, mug (3) would come first.
    assert await buy(recs, "k4", "d") == ["pen", "mug"]


async def test_without_items_it_only_suggests(recs: RecommendationsConnector) -> None:
    await buy(recs, "k1", "a", "mug")

    result = await recs.invoke("suggestions.refresh", {"contact": {"id": "b"}}, ctx("k2"))

    assert result == {"suggestions": ["mug"]}


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        pytest.param(1, True, id="1"),
        pytest.param(50, True, id="50"),
        pytest.param(0, False, id="0"),
        pytest.param(51, False, id="51"),
        pytest.param("5", False, id="str"),
        pytest.param(True, False, id="bool"),
    ],
)
def test_max_suggestions_option(value: Any, valid: bool) -> None:
    options = {"max_suggestions": value}
    if valid:
        assert RecommendationsConnector("r", options, InMemoryState()).max_suggestions == value
    else:
        with pytest.raises(ValueError, match=r"connector 'r': option 'max_suggestions'"):
            RecommendationsConnector("r", options, InMemoryState())


def test_default_and_unknown_options() -> None:
    assert RecommendationsConnector("r", {}, InMemoryState()).max_suggestions == 5
    with pytest.raises(ValueError, match=r"connector 'r': option.*'model'"):
        RecommendationsConnector("r", {"model": "als"}, InMemoryState())


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        pytest.param({"items": "mug"}, "attributes.items", id="not-a-list"),
        pytest.param({"items": [{"price": 1}]}, r"attributes.items\[0\].sku", id="no-sku"),
        pytest.param({"items": ["mug"]}, r"attributes.items\[0\].sku", id="not-a-dict"),
    ],
)
async def test_bad_items_fail_permanently(
    recs: RecommendationsConnector, attributes: JsonDict, field: str
) -> None:
    body = {"contact": {"id": "a"}, "attributes": attributes}
    with pytest.raises(PermanentConnectorError, match=rf"'{field}'"):
        await recs.invoke("suggestions.refresh", body, ctx("k1"))


async def test_unknown_action_fails_permanently(recs: RecommendationsConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"has no action 'suggestions.clear'"):
        await recs.invoke("suggestions.clear", payload("a"), ctx("k1"))
