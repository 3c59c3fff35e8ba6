"""Embedded web personalization: picks the offer for a segment and remembers what was shown.

Collection `shown`, keyed by contact id: {"offer", "segment", "times_shown", "keys"} (the
last offer). `keys` holds the idempotency keys of the latest shows, so a retried step is not
counted twice; the count and the keys change in one state transaction.
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

_OPTIONS = frozenset({"default_offer", "offers"})
# Retries follow their first attempt closely: a short memory of keys recognises them
# without the record growing with every show.
_RECENT_KEYS = 32


class PersonalizationConnector:
    """Shows offers by segment.

    Options:
        default_offer: offer code shown when the segment has none (required, non-empty).
        offers: mapping from segment to offer code.
    """

    kind: str = "sandbox_personalization"
    #: Offers tailored to the person: needs personalization consent.
    purposes: frozenset[str] = frozenset({"personalization"})
    actions: frozenset[str] = frozenset({"offers.show"})

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, _OPTIONS)
        default_offer = options.get("default_offer")
        if not isinstance(default_offer, str) or not default_offer:
            raise ValueError(f"connector {name!r}: option 'default_offer' must be a non-empty str")
        offers = options.get("offers", {})
        if not isinstance(offers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in offers.items()
        ):
            raise ValueError(
                f"connector {name!r}: option 'offers' must map segment names to offer codes"
            )
        self.name = name
        self.default_offer: str = default_offer
        self.offers: dict[str, str] = dict(offers)
        self._state = state

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Show the offer for the segment in params (or attributes) and record it."""
        require_action(self, action)
        _, contact_id = payload_contact(payload)
        segment = _segment(payload)
        offer = self.offers.get(segment, self.default_offer)
        key = ctx.idempotency_key

        def show(state: StateTx) -> None:
            previous = state.get("shown", contact_id) or {"times_shown": 0}
            keys: list[str] = list(previous.get("keys", []))
            if key in keys:
                return  # this step was counted already
            record = {
                "offer": offer,
                "segment": segment,
                "times_shown": previous["times_shown"] + 1,
                "keys": [*keys, key][-_RECENT_KEYS:],
            }
            state.put("shown", contact_id, record)

        await self._state.transaction(show)
        return {"offer": offer, "segment": segment, "source": "personalization"}

    async def health(self) -> None:
        """Always healthy: the state lives in the store."""

    async def aclose(self) -> None:
        """Nothing to release."""


def _segment(payload: JsonDict) -> str:
    for section in ("params", "attributes"):
        values = payload.get(section) or {}
        if not isinstance(values, dict):
            raise PermanentConnectorError(f"payload field '{section}' must be a dict")
        segment = values.get("segment")
        if segment is not None and not isinstance(segment, str):
            raise PermanentConnectorError(f"payload field '{section}.segment' must be a str")
        if segment:
            return segment
    return ""
