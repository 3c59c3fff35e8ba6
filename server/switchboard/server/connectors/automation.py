"""Embedded marketing automation: starts the follow-ups configured for a lead's status.

Collection `followups`, keyed by contact id: {"started": {status: [follow-up names]}}.
Checking what was started and recording what starts now is one state transaction, so
concurrent calls start each follow-up once.
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
    require,
    require_action,
)
from switchboard.server.rules.scoring import STATUSES


class AutomationConnector:
    """Starts each follow-up once per contact and status.

    Options:
        followups: mapping from lead status to the follow-up names to start on it.
    """

    kind: str = "sandbox_automation"
    #: Sales follow-ups for a lead (legitimate interest); set `purposes` in its settings
    #: when your automation tool sends marketing email.
    purposes: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset({"followups.start"})

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, {"followups"})
        self.name = name
        self.followups: dict[str, list[str]] = _followups(name, options.get("followups", {}))
        self._state = state

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Start the follow-ups for `lead.status` that this contact has not had yet."""
        require_action(self, action)
        _, contact_id = payload_contact(payload)
        status: str = require(require(payload, "lead", dict), "status")
        wanted = self.followups.get(status, [])

        def start(state: StateTx) -> JsonDict:
            record = state.get("followups", contact_id) or {"started": {}}
            done: list[str] = record["started"].get(status, [])
            new = [f for f in wanted if f not in done]
            if new:
                record["started"][status] = [*done, *new]
                state.put("followups", contact_id, record)
            return {
                "status": status,
                "started": new,
                "already_started": [f for f in wanted if f in done],
            }

        return await self._state.transaction(start)

    async def health(self) -> None:
        """Always healthy: the state lives in the store."""

    async def aclose(self) -> None:
        """Nothing to release."""


def _followups(name: str, value: Any) -> dict[str, list[str]]:
    problem = f"connector {name!r}: option 'followups' must map lead statuses to lists of names"
    if not isinstance(value, Mapping):
        raise ValueError(problem)
    if unknown := sorted(str(s) for s in value if s not in STATUSES):
        raise ValueError(f"{problem}; unknown status(es) {', '.join(map(repr, unknown))}")
    for actions in value.values():
        if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
            raise ValueError(problem)
    return {status: list(actions) for status, actions in value.items()}
