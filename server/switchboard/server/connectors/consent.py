"""The per-step marketing opt-in check shared by the adapters that send email.

Only an explicit opt-in counts: a missing or malformed consent record is a refusal. A step
may waive the check with `params.require_consent = false` (a receipt is not marketing).
"""

from __future__ import annotations

from switchboard.server.connectors.base import JsonDict
from switchboard.server.errors import PermanentConnectorError


def check_marketing_opt_in(contact: JsonDict, contact_id: str, params: JsonDict) -> None:
    """Fail permanently unless the contact opted in or the step waives the check."""
    required = params.get("require_consent", True)
    if not isinstance(required, bool):
        raise PermanentConnectorError("payload field 'params.require_consent' must be a bool")
    consent = contact.get("consent")
    opted_in = isinstance(consent, dict) and consent.get("opt_in") is True
    if required and not opted_in:
        raise PermanentConnectorError(f"contact {contact_id} has not opted in to marketing email")
