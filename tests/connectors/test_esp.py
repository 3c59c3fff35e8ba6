"""The sandbox ESP adapter: subscriptions, unsubscribe and erasure."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.server.connectors.base import InvokeContext, JsonDict
from switchboard.server.connectors.esp import EspConnector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.errors import PermanentConnectorError

CTX = InvokeContext(idempotency_key="k1")


def payload(opt_in: Any = True, contact_id: str = "c1", **params: Any) -> JsonDict:
    consent = {"opt_in": opt_in, "source": "web", "updated_at": ""}
    return {
        "event": "newsletter.signup",
        "contact": {"id": contact_id, "consent": consent},
        "params": {"list": "newsletter", **params},
    }


@pytest.fixture
def esp() -> EspConnector:
    return EspConnector("esp", {}, InMemoryState())


async def test_subscribe_is_idempotent(esp: EspConnector) -> None:
    first = await esp.invoke("lists.subscribe", payload(), CTX)
    again = await esp.invoke("lists.subscribe", payload(), CTX)

    assert first == {"list": "newsletter", "subscribed": True, "already_subscribed": False}
    assert again == {"list": "newsletter", "subscribed": True, "already_subscribed": True}


async def test_consent_is_left_to_the_gate_the_purpose_declares_it(esp: EspConnector) -> None:
    # The dispatcher and InvokeConnector check consent from the stored contact (a payload's
    # copy may be stale); the adapter only says what it serves.
    result = await esp.invoke("lists.subscribe", payload(opt_in=False), CTX)

    assert result["subscribed"] is True
    assert esp.purposes == frozenset({"email_marketing"})
    assert esp.kind == "sandbox_esp"


async def test_unsubscribe_reports_whether_it_was_subscribed(esp: EspConnector) -> None:
    await esp.invoke("lists.subscribe", payload(), CTX)

    first = await esp.invoke("lists.unsubscribe", payload(), CTX)
    again = await esp.invoke("lists.unsubscribe", payload(), CTX)

    assert first == {"list": "newsletter", "unsubscribed": True}
    assert again == {"list": "newsletter", "unsubscribed": False}


async def test_erase_removes_every_subscription_of_the_contact(esp: EspConnector) -> None:
    await esp.invoke("lists.subscribe", payload(), CTX)
    await esp.invoke("lists.subscribe", payload(list="offers"), CTX)
    await esp.invoke("lists.subscribe", payload(contact_id="c2"), CTX)

    assert await esp.invoke("contacts.erase", payload(), CTX) == {"erased": 2}
    assert await esp.invoke("contacts.erase", payload(), CTX) == {"erased": 0}
    again = await esp.invoke("lists.subscribe", payload(contact_id="c2"), CTX)
    assert again["already_subscribed"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"contact": {"id": "c1"}, "params": {}}, "list", id="no-list"),
        pytest.param({"contact": {"id": "c1"}}, "list", id="no-params"),
        pytest.param({"params": {"list": "x"}}, "contact", id="no-contact"),
    ],
)
async def test_bad_payload_fails_permanently(esp: EspConnector, body: JsonDict, field: str) -> None:
    with pytest.raises(PermanentConnectorError, match=rf"'{field}'"):
        await esp.invoke("lists.subscribe", body, CTX)


async def test_unknown_action_fails_permanently(esp: EspConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"has no action 'email.send'"):
        await esp.invoke("email.send", payload(), CTX)


def test_options_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"connector 'esp': option.*'smtp_host'"):
        EspConnector("esp", {"smtp_host": "localhost"}, InMemoryState())
