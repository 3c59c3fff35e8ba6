"""Embedded CRM: contact records and purchase history, kept in connector state.

Collections, keyed by contact id so erasure is two deletes:
    contacts   {"external_id", "contact"}
    purchases  {"orders": {order_id: {"amount", "items"}}}

Every change is one state transaction, so concurrent calls for one contact keep each
other's orders.

`contacts.upsert` also has a batch call, as real CRMs do (HubSpot's
`POST /crm/v3/objects/contacts/batch/upsert` takes up to 100 inputs a call and answers a
result per input): up to `BATCH_UPSERT` contacts in one state transaction, each with its own
result or error, so an import's chunk sync runs reach the embedded CRM in batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from switchboard.server.connectors.base import (
    BatchItem,
    ConnectorState,
    InvokeContext,
    ItemOutcome,
    JsonDict,
    StateTx,
    payload_contact,
    reject_unknown_options,
    require,
    require_action,
)
from switchboard.server.errors import ConnectorError, PermanentConnectorError

#: Contacts one `contacts.upsert` batch call takes (HubSpot's batch upsert limit).
BATCH_UPSERT = 100


class CrmConnector:
    """Keeps contacts and their purchases. Takes no options."""

    kind: str = "sandbox_crm"
    #: The customer record and purchases, kept to serve the customer (contract, legitimate
    #: interest): not a consent purpose.
    purposes: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset({"contacts.upsert", "contacts.erase", "purchases.record"})

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options)
        self.name = name
        self._state = state

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Perform a CRM action; see the module docstring for what is stored."""
        require_action(self, action)
        contact, contact_id = payload_contact(payload)
        if action == "contacts.upsert":
            return await self._upsert(contact_id, contact)
        if action == "contacts.erase":
            return await self._erase(contact_id)
        return await self._record(contact_id, payload.get("attributes") or {})

    def max_batch(self, action: str) -> int:
        """`contacts.upsert` is batched (up to `BATCH_UPSERT`); the other actions are not."""
        return BATCH_UPSERT if action == "contacts.upsert" else 1

    async def invoke_batch(self, action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        """Upsert every item's contact in one state transaction; an item without a contact
        fails alone (permanently), the others are kept."""
        require_action(self, action)
        if action != "contacts.upsert":
            raise PermanentConnectorError(f"action {action!r} has no batch call")
        parsed: list[tuple[str, JsonDict] | ConnectorError] = []
        for item in items:
            try:
                contact, contact_id = payload_contact(item.payload)
            except PermanentConnectorError as exc:
                parsed.append(exc)
            else:
                parsed.append((contact_id, contact))

        def upsert_all(state: StateTx) -> list[ItemOutcome]:
            return [one if isinstance(one, ConnectorError) else _put(state, *one) for one in parsed]

        return await self._state.transaction(upsert_all)

    async def health(self) -> None:
        """Always healthy: the state lives in the store."""

    async def aclose(self) -> None:
        """Nothing to release."""

    async def _upsert(self, contact_id: str, contact: JsonDict) -> JsonDict:
        return await self._state.transaction(lambda state: _put(state, contact_id, contact))

    async def _erase(self, contact_id: str) -> JsonDict:
        def erase(state: StateTx) -> JsonDict:
            had_contact = state.delete("contacts", contact_id)
            had_purchases = state.delete("purchases", contact_id)
            return {"erased": had_contact or had_purchases}

        return await self._state.transaction(erase)

    async def _record(self, contact_id: str, attributes: Any) -> JsonDict:
        if not isinstance(attributes, dict):
            raise PermanentConnectorError("payload field 'attributes' must be a dict")
        order_id: str = require(attributes, "order_id")
        amount = _number(attributes.get("amount"), "attributes.amount")
        items = _items(attributes.get("items") or [])

        def record(state: StateTx) -> JsonDict:
            history = state.get("purchases", contact_id) or {"orders": {}}
            # Keyed by order id: a redelivered purchase replaces itself instead of counting
            # twice.
            history["orders"][order_id] = {"amount": amount, "items": items}
            state.put("purchases", contact_id, history)
            orders = history["orders"].values()
            return {
                "order_id": order_id,
                "purchase_count": len(history["orders"]),
                "lifetime_value": round(sum(o["amount"] for o in orders), 2),
            }

        return await self._state.transaction(record)


def _put(state: StateTx, contact_id: str, contact: JsonDict) -> JsonDict:
    """Keep one contact; its result says whether the CRM knew it before."""
    external_id = external_id_for(contact_id)
    existing = state.get("contacts", contact_id)
    state.put("contacts", contact_id, {"external_id": external_id, "contact": contact})
    return {"external_id": external_id, "created": existing is None}


def external_id_for(contact_id: str) -> str:
    """The CRM's stable id for a contact: `crm_` and 12 hex digits of a hash of its id."""
    return "crm_" + hashlib.sha256(contact_id.encode()).hexdigest()[:12]


def _number(value: Any, field: str) -> float:
    # bool is an int subclass; an amount of True is a caller bug, not 1.0.
    if value is None:
        raise PermanentConnectorError(f"payload field '{field}' is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PermanentConnectorError(f"payload field '{field}' must be a number")
    return float(value)


def _items(items: Any) -> list[JsonDict]:
    if not isinstance(items, list):
        raise PermanentConnectorError("payload field 'attributes.items' must be a list")
    clean: list[JsonDict] = []
    for i, item in enumerate(items):
        field = f"attributes.items[{i}]"
        if not isinstance(item, dict):
            raise PermanentConnectorError(f"payload field '{field}' must be a dict")
        sku = item.get("sku")
        if not isinstance(sku, str) or not sku:
            raise PermanentConnectorError(f"payload field '{field}.sku' must be a non-empty str")
        quantity = item.get("quantity", 1)
        # JSON numbers arrive as floats through protobuf Struct: accept 2.0, refuse 2.5.
        if isinstance(quantity, float) and quantity.is_integer():
            quantity = int(quantity)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise PermanentConnectorError(f"payload field '{field}.quantity' must be an int >= 1")
        price = _number(item.get("price", 0.0), f"{field}.price")
        clean.append({"sku": sku, "quantity": quantity, "price": price})
    return clean
