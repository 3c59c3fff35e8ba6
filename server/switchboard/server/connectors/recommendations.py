"""Embedded recommendations: "most purchased products you have not bought yet".

Collections:
    bought      by contact id: {"skus": [sorted skus the contact bought]}
    popularity  by sku: {"sku", "count"}: how many purchases included the sku
    applied     by idempotency key: {"contact_id"}: purchases already counted

A purchase (its skus, their popularity and its key) is recorded in one state transaction:
concurrent purchases all count, and a retried step (same key) counts once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchboard.server.connectors.base import (
    ConnectorState,
    InvokeContext,
    JsonDict,
    StateTx,
    payload_contact,
    reject_unknown_options,
    require_action,
)
from switchboard.server.errors import PermanentConnectorError

# Popularity is read whole; the embedded catalogue is assumed to be far smaller than this.
_SCAN_LIMIT = 100_000


class RecommendationsConnector:
    """Suggests popular skus.

    Options:
        max_suggestions: how many skus to suggest, 1..50 (default 5).
    """

    kind: str = "sandbox_recommendations"
    #: Suggestions from the person's purchases: needs personalization consent.
    purposes: frozenset[str] = frozenset({"personalization"})
    actions: frozenset[str] = frozenset({"suggestions.refresh"})

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, {"max_suggestions"})
        limit = options.get("max_suggestions", 5)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
            raise ValueError(
                f"connector {name!r}: option 'max_suggestions' must be an int in 1..50"
            )
        self.name = name
        self.max_suggestions: int = limit
        self._state = state

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Record the purchased skus in attributes.items, then suggest the contact's next buys."""
        require_action(self, action)
        _, contact_id = payload_contact(payload)
        skus = _skus(payload.get("attributes") or {})
        bought = await self._record(contact_id, skus, ctx.idempotency_key)
        return {"suggestions": await self._suggest(bought)}

    async def health(self) -> None:
        """Always healthy: the state lives in the store."""

    async def aclose(self) -> None:
        """Nothing to release."""

    async def _record(self, contact_id: str, skus: list[str], key: str) -> set[str]:
        def record(state: StateTx) -> set[str]:
            row = state.get("bought", contact_id)
            bought = set(row["skus"]) if row else set()
            # A retried step carries the same key: count its purchase once.
            if not skus or state.get("applied", key) is not None:
                return bought
            for sku in skus:
                popular = state.get("popularity", sku) or {"sku": sku, "count": 0}
                popular["count"] += 1
                state.put("popularity", sku, popular)
            bought.update(skus)
            state.put("bought", contact_id, {"skus": sorted(bought)})
            state.put("applied", key, {"contact_id": contact_id})
            return bought

        return await self._state.transaction(record)

    async def _suggest(self, bought: set[str]) -> list[str]:
        ranked = await self._state.scan("popularity", limit=_SCAN_LIMIT)
        candidates = sorted(
            (r for r in ranked if r["sku"] not in bought), key=lambda r: (-r["count"], r["sku"])
        )
        return [r["sku"] for r in candidates[: self.max_suggestions]]


def _skus(attributes: Any) -> list[str]:
    """The distinct skus of `attributes.items`, in first-seen order."""
    if not isinstance(attributes, dict):
        raise PermanentConnectorError("payload field 'attributes' must be a dict")
    items = attributes.get("items") or []
    if not isinstance(items, list):
        raise PermanentConnectorError("payload field 'attributes.items' must be a list")
    skus: list[str] = []
    for i, item in enumerate(items):
        sku = item.get("sku") if isinstance(item, dict) else None
        if not isinstance(sku, str) or not sku:
            raise PermanentConnectorError(f"payload field 'attributes.items[{i}].sku' is required")
        if sku not in skus:
            skus.append(sku)
    return skus
