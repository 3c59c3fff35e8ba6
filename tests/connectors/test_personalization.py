"""The embedded personalization adapter: offers by segment, default offer, option checks."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.server.connectors.base import InvokeContext, JsonDict
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.personalization import PersonalizationConnector
from switchboard.server.errors import PermanentConnectorError

CTX = InvokeContext(idempotency_key="k1")
OPTIONS = {"default_offer": "WELCOME-DEFAULT", "offers": {"newsletter": "WELCOME10"}}


def payload(params: JsonDict | None = None, attributes: JsonDict | None = None) -> JsonDict:
    return {"contact": {"id": "c1"}, "params": params or {}, "attributes": attributes or {}}


@pytest.fixture
def state() -> InMemoryState:
    return InMemoryState()


@pytest.fixture
def adapter(state: InMemoryState) -> PersonalizationConnector:
    return PersonalizationConnector("personalization", OPTIONS, state)


@pytest.mark.parametrize(
    ("body", "offer", "segment"),
    [
        pytest.param(payload({"segment": "newsletter"}), "WELCOME10", "newsletter", id="params"),
        pytest.param(
            payload(attributes={"segment": "newsletter"}), "WELCOME10", "newsletter", id="attrs"
        ),
        pytest.param(
            payload({"segment": "newsletter"}, {"segment": "vip"}),
            "WELCOME10",
            "newsletter",
            id="params-win",
        ),
        pytest.param(payload({"segment": "vip"}), "WELCOME-DEFAULT", "vip", id="unknown-segment"),
        pytest.param(payload(), "WELCOME-DEFAULT", "", id="no-segment"),
    ],
)
async def test_offer_for_segment(
    adapter: PersonalizationConnector, body: JsonDict, offer: str, segment: str
) -> None:
    result = await adapter.invoke("offers.show", body, CTX)

    assert result == {"offer": offer, "segment": segment, "source": "personalization"}


async def test_shown_offer_is_recorded_per_contact(
    adapter: PersonalizationConnector, state: InMemoryState
) -> None:
    await adapter.invoke("offers.show", payload({"segment": "vip"}), InvokeContext("k1"))
    await adapter.invoke("offers.show", payload({"segment": "newsletter"}), InvokeContext("k2"))

    shown = await state.get("shown", "c1")

    assert shown == {
        "offer": "WELCOME10",
        "segment": "newsletter",
        "times_shown": 2,
        "keys": ["k1", "k2"],
    }


async def test_a_retried_show_is_counted_once(
    adapter: PersonalizationConnector, state: InMemoryState
) -> None:
    first = await adapter.invoke("offers.show", payload({"segment": "vip"}), InvokeContext("k1"))
    retried = await adapter.invoke("offers.show", payload({"segment": "vip"}), InvokeContext("k1"))

    shown = await state.get("shown", "c1")

    assert retried == first
    assert shown is not None
    assert shown["times_shown"] == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({}, "'default_offer'", id="missing-default"),
        pytest.param({"default_offer": ""}, "'default_offer'", id="empty-default"),
        pytest.param({"default_offer": "X", "offers": ["A"]}, "'offers'", id="offers-list"),
        pytest.param({"default_offer": "X", "offers": {"a": 1}}, "'offers'", id="offer-not-str"),
        pytest.param({"default_offer": "X", "colour": "red"}, "'colour'", id="unknown-option"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=rf"connector 'web': option.*{message}"):
        PersonalizationConnector("web", options, InMemoryState())


async def test_bad_payload_fails_permanently(adapter: PersonalizationConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"'params.segment'"):
        await adapter.invoke("offers.show", payload({"segment": 3}), CTX)
    with pytest.raises(PermanentConnectorError, match=r"'contact'"):
        await adapter.invoke("offers.show", {"params": {}}, CTX)


async def test_unknown_action_fails_permanently(adapter: PersonalizationConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"has no action 'offers.hide'"):
        await adapter.invoke("offers.hide", payload(), CTX)
