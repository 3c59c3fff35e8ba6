"""Reading HubSpot's batch answers back into one outcome per input.

A batch upsert answers 200 with `results`, or 207 Multi-Status with `results` and
`errors`. Each input carries an `objectWriteTraceId` that its result echoes and its error
names in `context.objectWriteTraceId`; results without it are matched by email, and errors
naming inputs by `context.ids` likewise ("Multi-status errors",
https://developers.hubspot.com/docs/api-reference/error-handling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from switchboard.server.connectors.base import ItemOutcome, JsonDict
from switchboard.server.errors import (
    ConnectorError,
    PermanentConnectorError,
    RetryableConnectorError,
)


@dataclass
class UpsertInput:
    """One distinct contact in an upsert call; `trace` is its `objectWriteTraceId`."""

    trace: str
    email: str
    properties: dict[str, Any]


def vendor_message(body: Mapping[str, Any]) -> str:
    """HubSpot's human-readable message, with the per-field details it lists."""
    message = str(body.get("message") or "")
    details = [
        str(e.get("message"))
        for e in body.get("errors") or []
        if isinstance(e, dict) and e.get("message")
    ]
    if details:
        message = f"{message} ({'; '.join(details)})" if message else "; ".join(details)
    return message[:500]


def upsert_outcomes(body: JsonDict, inputs: list[UpsertInput]) -> dict[str, ItemOutcome]:
    """Each input's outcome by trace: its record, its own error, or retry when none came."""
    by_email = {i.email.lower(): i.trace for i in inputs}
    outcomes: dict[str, ItemOutcome] = {}
    for result in body.get("results") or []:
        trace = result.get("objectWriteTraceId")
        if trace is None:
            email = str((result.get("properties") or {}).get("email", "")).lower()
            trace = by_email.get(email)
        if trace is not None and result.get("id") is not None:
            outcomes[str(trace)] = {
                "external_id": str(result["id"]),
                "created": bool(result.get("new")),
            }
    unmatched: list[str] = []
    for error in body.get("errors") or []:
        context = error.get("context") or {}
        traces = [str(t) for t in context.get("objectWriteTraceId") or []]
        traces += [
            by_email[str(e).lower()] for e in context.get("ids") or [] if str(e).lower() in by_email
        ]
        failure = _item_error(error)
        if not traces:
            unmatched.append(vendor_message(error))
        for trace in traces:
            outcomes[trace] = failure
    for i in inputs:
        if i.trace not in outcomes:
            outcomes[i.trace] = (
                PermanentConnectorError(f"HubSpot rejected the contact: {'; '.join(unmatched)}")
                if unmatched
                else RetryableConnectorError("HubSpot answered no result for this contact")
            )
    return outcomes


def _item_error(error: Mapping[str, Any]) -> ConnectorError:
    message = f"HubSpot rejected the contact: {vendor_message(error)}"
    if str(error.get("category", "")).upper() in {"RATE_LIMITS", "INTERNAL_ERROR"}:
        return RetryableConnectorError(message)
    return PermanentConnectorError(message)
