"""The consent gate: a step goes out only if its contact opted in to what its connector serves.

Checked at delivery time against the contact as stored now, not the run's snapshot: consent
withdrawn after the trigger must stop the steps still to come. The read costs one indexed
point lookup, and only for a connector that serves a purpose; connectors serving none (the
CRM, scoring, most webhooks) and the actions that carry out a person's rights (erasure,
unsubscribe) pass without touching the store. An erased contact has no record left, so it
has no consent either.

A refused step is SKIPPED with the reason: not sent, no attempt counted, no dead letter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.connectors.base import Connector
from switchboard.server.connectors.purposes import exempt_actions_of, served_purposes
from switchboard.server.rules.consent import ALWAYS_ALLOWED_ACTIONS, refusal
from switchboard.server.rules.plan import PlanStep
from switchboard.server.runs.outcome import Outcome
from switchboard.server.store.base import OutboxItem, Store
from switchboard.v1 import campaigns_pb2, contacts_pb2

log = logging.getLogger(__name__)


class ConsentGate:
    """Decides, per call, whether the contact's consent lets it go to the connector."""

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        settings: Mapping[str, ConnectorSettings],
    ) -> None:
        self._store = store
        self._purposes = {
            name: served_purposes(c, settings.get(name)) for name, c in connectors.items()
        }
        self._exempt = {name: exempt_actions_of(c) for name, c in connectors.items()}

    def purposes(self, connector: str) -> frozenset[str]:
        """The purposes `connector` serves (none for an unknown name)."""
        return self._purposes.get(connector, frozenset())

    def checks(self, connector: str, action: str) -> bool:
        """Whether a call of `action` to `connector` depends on consent at all."""
        return bool(self.purposes(connector)) and not (
            action in ALWAYS_ALLOWED_ACTIONS or action in self._exempt.get(connector, ())
        )

    async def refusal(self, connector: str, action: str, contact_id: str) -> str | None:
        """Why `action` may not go to `connector` for the contact stored as `contact_id`."""
        if not self.checks(connector, action):
            return None
        contact = await self.stored_contact(contact_id)
        return refusal(self.purposes(connector), action, contact)

    async def stored_contact(
        self, contact_id: str, email: str = ""
    ) -> contacts_pb2.Contact | None:
        """The contact as stored now, by id or else by normalized email; None when erased
        or never stored."""
        if contact_id:
            return await self._store.read(lambda tx: tx.contact_by_id(contact_id), point=True)
        if email:
            return await self._store.read(lambda tx: tx.contact_by_email(email), point=True)
        return None

    async def skip(self, item: OutboxItem, step: PlanStep) -> Outcome | None:
        """The SKIPPED outcome of a delivery the contact's consent does not allow, or None."""
        reason = await self.refusal(step.connector, step.action, run_contact_id(item))
        if reason is None:
            return None
        log.info(
            "step %d of run %s (%s %s) skipped: %s",
            item.step_index,
            item.run_id,
            step.connector,
            step.action,
            reason,
            extra={"fields": {"run_id": item.run_id, "step": item.step_index, "reason": reason}},
        )
        return Outcome(
            campaigns_pb2.StepStatus.STEP_STATUS_SKIPPED, item.attempts, skip_reason=reason
        )

    async def skips(self, deliveries: list[tuple[OutboxItem, PlanStep]]) -> list[Outcome | None]:
        """`skip` for each delivery of a batch, in order. Only deliveries whose connector
        serves a purpose are looked up (together): for the others (the CRM, most webhooks)
        a task each cost more than the rest of a batch's screening."""
        found: list[Outcome | None] = [None] * len(deliveries)
        checked = [
            i for i, (_, step) in enumerate(deliveries) if self.checks(step.connector, step.action)
        ]
        if checked:
            outcomes = await asyncio.gather(*(self.skip(*deliveries[i]) for i in checked))
            for i, outcome in zip(checked, outcomes, strict=True):
                found[i] = outcome
        return found


def run_contact_id(item: OutboxItem) -> str:
    """The id of the contact the delivery's run is for ("" for none)."""
    if item.contact_id:
        return item.contact_id
    contact: Any = item.plan.base.get("contact")
    return str(contact.get("id", "")) if isinstance(contact, dict) else ""
