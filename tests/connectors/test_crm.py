"""The embedded CRM adapter: contact upserts, erasure and idempotent purchase history."""

from __future__ import annotations

import re
from typing import Any

import pytest

from switchboard.server.connectors.base import (
    BatchConnector,
    BatchItem,
    InvokeContext,
    JsonDict,
    batch_limits,
)
from switchboard.server.connectors.crm import CrmConnector, external_id_for
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.errors import PermanentConnectorError

CTX = InvokeContext(idempotency_key="k1")


def payload(contact_id: str = "c1", **attributes: Any) -> JsonDict:
    contact = {"id": contact_id, "email": f"{contact_id}@example.com"}
    return {"event": "purchase.completed", "contact": contact, "attributes": attributes}


@pytest.fixture
def crm() -> CrmConnector:
    return CrmConnector("crm", {}, InMemoryState())


async def test_upsert_creates_then_updates_with_a_stable_external_id(crm: CrmConnector) -> None:
    first = await crm.invoke("contacts.upsert", payload(), CTX)
    second = await crm.invoke("contacts.upsert", payload(), CTX)

    assert first == {"external_id": external_id_for("c1"), "created": True}
    assert second == {"external_id": first["external_id"], "created": False}
    assert re.fullmatch(r"crm_[0-9a-f]{12}", first["external_id"])
    assert external_id_for("c2") != first["external_id"]


async def test_same_order_twice_is_counted_once(crm: CrmConnector) -> None:
    items = [{"sku": "mug", "quantity": 2, "price": 10.0}]
    first = await crm.invoke(
        "purchases.record", payload(order_id="o1", amount=20, items=items), CTX
    )
    again = await crm.invoke(
        "purchases.record", payload(order_id="o1", amount=20, items=items), CTX
    )
    other = await crm.invoke("purchases.record", payload(order_id="o2", amount=5.5), CTX)

    assert first == {"order_id": "o1", "purchase_count": 1, "lifetime_value": 20.0}
    assert again == first
    assert other == {"order_id": "o2", "purchase_count": 2, "lifetime_value": 25.5}


async def test_erase_removes_contact_and_purchases(crm: CrmConnector) -> None:
    await crm.invoke("contacts.upsert", payload(), CTX)
    await crm.invoke("purchases.record", payload(order_id="o1", amount=20), CTX)

    assert await crm.invoke("contacts.erase", payload(), CTX) == {"erased": True}
    assert await crm.invoke("contacts.erase", payload(), CTX) == {"erased": False}
    recorded = await crm.invoke("purchases.record", payload(order_id="o2", amount=1), CTX)
    assert recorded["purchase_count"] == 1
    assert (await crm.invoke("contacts.upsert", payload(), CTX))["created"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"attributes": {"order_id": "o1", "amount": 1}}, "contact", id="no-contact"),
        pytest.param({"contact": {}, "attributes": {"amount": 1}}, "id", id="no-contact-id"),
        pytest.param(payload(amount=1), "order_id", id="no-order-id"),
        pytest.param(payload(order_id="o1"), "attributes.amount", id="no-amount"),
        pytest.param(payload(order_id="o1", amount="9"), "attributes.amount", id="amount-str"),
        pytest.param(payload(order_id="o1", amount=True), "attributes.amount", id="amount-bool"),
        pytest.param(
            payload(order_id="o1", amount=1, items="mug"), "attributes.items", id="items-not-list"
        ),
        pytest.param(
            payload(order_id="o1", amount=1, items=[{"quantity": 1}]),
            r"attributes.items\[0\].sku",
            id="item-without-sku",
        ),
    ],
)
async def test_bad_purchase_payload_fails_permanently_naming_the_field(
    crm: CrmConnector, body: JsonDict, field: str
) -> None:
    with pytest.raises(PermanentConnectorError, match=rf"'{field}'"):
        await crm.invoke("purchases.record", body, CTX)


async def test_unknown_action_fails_permanently(crm: CrmConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"has no action 'contacts.merge'"):
        await crm.invoke("contacts.merge", payload(), CTX)


def test_options_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"connector 'crm': option.*'colour'"):
        CrmConnector("crm", {"colour": "red"}, InMemoryState())


async def test_health_and_close_are_no_ops(crm: CrmConnector) -> None:
    await crm.health()
    await crm.aclose()


@pytest.mark.parametrize(
    ("quantity", "accepted"),
    [
        pytest.param(2.0, True, id="integral-float-from-struct"),
        pytest.param(2.5, False, id="fractional"),
        pytest.param(0, False, id="zero"),
    ],
)
async def test_item_quantity_from_json(crm: CrmConnector, quantity: float, accepted: bool) -> None:
    items = [{"sku": "mug", "quantity": quantity, "price": 1.0}]
    call = crm.invoke("purchases.record", payload(order_id="q", amount=2, items=items), CTX)
    if accepted:
        assert (await call)["purchase_count"] == 1
    else:
        with pytest.raises(PermanentConnectorError, match="quantity"):
            await call


async def test_a_batch_upsert_answers_each_contact_and_fails_a_bad_one_alone(
    crm: CrmConnector,
) -> None:
    await crm.invoke("contacts.upsert", payload("c2"), CTX)  # known before the batch
    items = [
        BatchItem(payload("c1"), InvokeContext(idempotency_key="k:c1")),
        BatchItem({"contact": {"email": "x@example.com"}}, InvokeContext(idempotency_key="k:x")),
        BatchItem(payload("c2"), InvokeContext(idempotency_key="k:c2")),
    ]
    first, bad, second = await crm.invoke_batch("contacts.upsert", items)

    assert first == {"external_id": external_id_for("c1"), "created": True}
    assert isinstance(bad, PermanentConnectorError)
    assert second == {"external_id": external_id_for("c2"), "created": False}
    kept = await crm.invoke("contacts.upsert", payload("c1"), CTX)
    assert kept["created"] is False  # the batch kept c1


def test_only_contacts_upsert_is_batched_up_to_hubspots_limit(crm: CrmConnector) -> None:
    assert isinstance(crm, BatchConnector)
    assert batch_limits(crm, "contacts.upsert") == (100, None)
    assert batch_limits(crm, "contacts.erase") == (1, None)
    assert batch_limits(crm, "purchases.record") == (1, None)
