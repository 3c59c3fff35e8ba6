"""Consent for direct calls (InvokeConnector): the same rule as for deliveries.

A direct call to a connector that serves a purpose must name, in `payload.contact`, a stored
contact (by `id`, or else `email`) who has opted in to it; the consent is read from the
store, never from the payload, which the caller writes. `skip_consent_check` lets an
operator call anyway (the method needs the `connectors:admin` scope already); the call's
record says the check was skipped.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from switchboard.server.dispatch.consent import ConsentGate
from switchboard.server.errors import FailedPrecondition
from switchboard.server.rules.consent import refusal
from switchboard.server.rules.validation import normalize_email
from switchboard.v1 import connectors_pb2

_HOW = (
    "record the contact's consent with UpsertContact (contact.consents), "
    "or set skip_consent_check to call anyway"
)


async def require_consent(gate: ConsentGate, req: connectors_pb2.InvokeConnectorRequest) -> None:
    """Raise FAILED_PRECONDITION when the call's contact has not consented to its purposes."""
    if req.skip_consent_check or not gate.checks(req.connector, req.action):
        return
    purposes = gate.purposes(req.connector)
    served = f"connector {req.connector!r} serves {', '.join(sorted(purposes))}"
    contact_id, email = _named_contact(req)
    if not (contact_id or email):
        raise FailedPrecondition(
            f"{served}: payload.contact must name a stored contact (id or email) whose "
            "consent is checked; or set skip_consent_check to call anyway"
        )
    contact = await gate.stored_contact(contact_id, normalize_email(email))
    reason = refusal(purposes, req.action, contact)
    if reason is not None:
        raise FailedPrecondition(f"{served}: {reason}; {_HOW}")


def _named_contact(req: connectors_pb2.InvokeConnectorRequest) -> tuple[str, str]:
    if "contact" not in req.payload.fields:
        return "", ""
    contact: Any = json_format.MessageToDict(req.payload.fields["contact"])
    if not isinstance(contact, dict):
        return "", ""
    contact_id, email = contact.get("id"), contact.get("email")
    return (
        contact_id if isinstance(contact_id, str) else "",
        email if isinstance(email, str) else "",
    )
