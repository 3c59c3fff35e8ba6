"""Embedded analytics: event counters and conversion totals.

Collections:
    events           by event name: {"event", "count"}
    event_keys       by idempotency key: {"event"}: events already counted
    conversions      one key, "totals": {"conversions", "revenue"}
    conversion_keys  by idempotency key: {"value"}: conversions already counted

Each count and the record of its key change in one state transaction: concurrent calls
cannot lose an increment, and a step retried after a crash (same key) is not counted again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchboard.server.connectors.base import (
    ConnectorState,
    InvokeContext,
    JsonDict,
    StateTx,
    reject_unknown_options,
    require_action,
)
from switchboard.server.errors import PermanentConnectorError

_TOTALS = "totals"


class AnalyticsConnector:
    """Counts events and conversions. Takes no options."""

    kind: str = "sandbox_analytics"
    #: Measures behaviour and conversions: needs analytics consent.
    purposes: frozenset[str] = frozenset({"analytics"})
    actions: frozenset[str] = frozenset({"events.track", "conversions.track"})

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options)
        self.name = name
        self._state = state

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Track an event (params.name, else the payload's event) or a conversion."""
        require_action(self, action)
        if action == "events.track":
            return await self._track_event(
                _section(payload, "params").get("name") or payload.get("event"),
                ctx.idempotency_key,
            )
        amount = _section(payload, "attributes").get("amount", 0)
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise PermanentConnectorError("payload field 'attributes.amount' must be a number")
        return await self._track_conversion(float(amount), ctx.idempotency_key)

    async def health(self) -> None:
        """Always healthy: the state lives in the store."""

    async def aclose(self) -> None:
        """Nothing to release."""

    async def _track_event(self, name: Any, key: str) -> JsonDict:
        if not isinstance(name, str) or not name:
            raise PermanentConnectorError("payload field 'params.name' (or 'event') is required")

        def count(state: StateTx) -> JsonDict:
            counter = state.get("events", name) or {"event": name, "count": 0}
            if state.get("event_keys", key) is None:
                counter["count"] += 1
                state.put("events", name, counter)
                state.put("event_keys", key, {"event": name})
            return {"event": name, "count": counter["count"]}

        return await self._state.transaction(count)

    async def _track_conversion(self, amount: float, key: str) -> JsonDict:
        def count(state: StateTx) -> JsonDict:
            totals = state.get("conversions", _TOTALS) or {"conversions": 0, "revenue": 0.0}
            # A retried step carries the same key: count its conversion once.
            if state.get("conversion_keys", key) is None:
                totals["conversions"] += 1
                totals["revenue"] = round(totals["revenue"] + amount, 2)
                state.put("conversions", _TOTALS, totals)
                state.put("conversion_keys", key, {"value": amount})
            return {"conversions": totals["conversions"], "revenue": totals["revenue"]}

        return await self._state.transaction(count)


def _section(payload: JsonDict, key: str) -> JsonDict:
    value = payload.get(key) or {}
    if not isinstance(value, dict):
        raise PermanentConnectorError(f"payload field '{key}' must be a dict")
    return value
