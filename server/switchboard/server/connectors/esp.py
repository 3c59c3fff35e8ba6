"""Embedded ESP: list subscriptions with a consent check. Sending email is not in scope.

Collection `subscriptions`, keyed by contact id: {"lists": [sorted list names]}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchboard.server.connectors.base import ConnectorState, InvokeContext, JsonDict, require
from switchboard.server.errors import PermanentConnectorError


class EspConnector:
    """Subscribes contacts to lists, only with marketing consent. Takes no options."""

    kind: str = "esp"
    actions: frozenset[str] = frozenset({"lists.subscribe", "lists.unsubscribe", "contacts.erase"})

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        if options:
            unknown = ", ".join(map(repr, sorted(options)))
            raise ValueError(f"connector {name!r}: option(s) {unknown} unknown; esp takes none")
        self.name = name
        self._state = state

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Subscribe, unsubscribe or erase the payload's contact."""
        if action not in self.actions:
            raise PermanentConnectorError(
                f"connector {self.name!r} ({self.kind}) has no action {action!r}; "
                f"supported: {', '.join(sorted(self.actions))}"
            )
        contact = require(payload, "contact", dict)
        contact_id: str = require(contact, "id")
        if action == "contacts.erase":
            lists = await self._lists(contact_id)
            await self._state.delete("subscriptions", contact_id)
            return {"erased": len(lists)}
        params = payload.get("params") or {}
        if not isinstance(params, dict):
            raise PermanentConnectorError("payload field 'params' must be a dict")
        list_name: str = require(params, "list")
        if action == "lists.subscribe":
            _check_consent(contact, contact_id, params)
            return await self._subscribe(contact_id, list_name)
        return await self._unsubscribe(contact_id, list_name)

    async def health(self) -> None:
        """Always healthy: the state lives in the store."""

    async def aclose(self) -> None:
        """Nothing to release."""

    async def _lists(self, contact_id: str) -> list[str]:
        record = await self._state.get("subscriptions", contact_id)
        return list(record["lists"]) if record else []

    async def _subscribe(self, contact_id: str, list_name: str) -> JsonDict:
        lists = await self._lists(contact_id)
        already = list_name in lists
        if not already:
            await self._state.put(
                "subscriptions", contact_id, {"lists": sorted([*lists, list_name])}
            )
        return {"list": list_name, "subscribed": True, "already_subscribed": already}

    async def _unsubscribe(self, contact_id: str, list_name: str) -> JsonDict:
        lists = await self._lists(contact_id)
        if list_name not in lists:
            return {"list": list_name, "unsubscribed": False}
        remaining = [name for name in lists if name != list_name]
        if remaining:
            await self._state.put("subscriptions", contact_id, {"lists": remaining})
        else:
            await self._state.delete("subscriptions", contact_id)
        return {"list": list_name, "unsubscribed": True}


def _check_consent(contact: JsonDict, contact_id: str, params: JsonDict) -> None:
    required = params.get("require_consent", True)
    if not isinstance(required, bool):
        raise PermanentConnectorError("payload field 'params.require_consent' must be a bool")
    consent = contact.get("consent")
    # Only an explicit opt-in counts: a missing or malformed consent record is a refusal.
    opted_in = isinstance(consent, dict) and consent.get("opt_in") is True
    if required and not opted_in:
        raise PermanentConnectorError(f"contact {contact_id} has not opted in to marketing email")
