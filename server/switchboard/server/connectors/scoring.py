"""Embedded lead scoring: applies `scoring_rules` to the payload's contact and lead.

Collection `scores`, keyed by contact id: the last result plus `scored_at`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from switchboard.server.config.sections import ScoringSettings
from switchboard.server.connectors.base import (
    ConnectorState,
    InvokeContext,
    JsonDict,
    payload_contact,
    reject_unknown_options,
    require_action,
)
from switchboard.server.errors import PermanentConnectorError
from switchboard.server.rules.scoring import ActivityRecord, ScoreResult, ScoringEngine


class ScoringConnector:
    """Scores leads with the configured rules. Takes no options."""

    kind: str = "sandbox_scoring"
    #: Switchboard's own lead scoring (legitimate interest): sends nothing out.
    purposes: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset({"leads.score"})

    def __init__(
        self,
        name: str,
        options: Mapping[str, Any],
        state: ConnectorState,
        rules: ScoringSettings,
    ) -> None:
        reject_unknown_options(name, self.kind, options)
        try:
            self.engine = ScoringEngine(rules)
        except ValueError as exc:
            raise ValueError(f"connector {name!r}: {exc}") from exc
        self.name = name
        self._state = state

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Score the payload's contact from its profile and `lead` (status and activities)."""
        require_action(self, action)
        contact, contact_id = payload_contact(payload)
        lead = payload.get("lead") or {}
        if not isinstance(lead, dict):
            raise PermanentConnectorError("payload field 'lead' must be a dict")
        status = lead.get("status") or "new"
        if not isinstance(status, str):
            raise PermanentConnectorError("payload field 'lead.status' must be a str")
        now = datetime.now(UTC)
        result = self.engine.score(_profile(contact), _activities(lead), status, now)
        answer = _as_json(result)
        await self._state.put("scores", contact_id, {**answer, "scored_at": now.isoformat()})
        return answer

    async def health(self) -> None:
        """Always healthy: the state lives in the store."""

    async def aclose(self) -> None:
        """Nothing to release."""


def _profile(contact: JsonDict) -> dict[str, Any]:
    consent = contact.get("consent")
    # The contact's consent is a record; the rules only care whether it is an opt-in.
    opted_in = isinstance(consent, dict) and consent.get("opt_in") is True
    return {**contact, "consent": opted_in}


def _activities(lead: JsonDict) -> list[ActivityRecord]:
    raw = lead.get("activities") or []
    if not isinstance(raw, list):
        raise PermanentConnectorError("payload field 'lead.activities' must be a list")
    return [_activity(item, f"lead.activities[{i}]") for i, item in enumerate(raw)]


def _activity(item: Any, field: str) -> ActivityRecord:
    if not isinstance(item, dict):
        raise PermanentConnectorError(f"payload field '{field}' must be a dict")
    kind = item.get("type")
    if not isinstance(kind, str) or not kind:
        raise PermanentConnectorError(f"payload field '{field}.type' is required")
    try:
        occurred_at = datetime.fromisoformat(item["occurred_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentConnectorError(
            f"payload field '{field}.occurred_at' must be an ISO 8601 timestamp"
        ) from exc
    if occurred_at.tzinfo is None:
        # Timestamps without an offset are taken as UTC, the service's convention.
        occurred_at = occurred_at.replace(tzinfo=UTC)
    value = item.get("value", 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PermanentConnectorError(f"payload field '{field}.value' must be a number")
    return ActivityRecord(type=kind, occurred_at=occurred_at, value=float(value))


def _as_json(result: ScoreResult) -> JsonDict:
    reasons = [
        {"rule": r.rule, "points": r.points, "description": r.description} for r in result.reasons
    ]
    return {"score": result.score, "grade": result.grade, "reasons": reasons}
