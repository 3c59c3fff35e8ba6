"""The erased person's email, sealed in their erasure run until its deliveries end.

Erasure wipes the contact before its `contact.erased` run is delivered, yet the tools that
delete by email (HubSpot's GDPR delete with `idProperty: email`, Mailchimp's subscriber
hash) need the address. The run's plan therefore carries it sealed: AES-GCM under the
database's own erasure key, bound to the run id, never as text. The dispatcher opens it
into the payload of each call, in memory only; when the run ends the sealed value is
removed from the plan, so afterwards nothing stored can give the address back.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import WriteTx

#: The contact payload key holding the sealed email (never sent to a tool).
SEALED_EMAIL = "sealed_email"
_KEY_NAME = "erasure_seal"
_NONCE = 12


def seal_key(tx: WriteTx) -> bytes:
    """The database's erasure key (made on first use, the same for every process)."""
    return tx.server_key(_KEY_NAME, secrets.token_bytes(32))


def seal(key: bytes, email: str, run_id: str) -> str:
    """`email` encrypted for the run `run_id` (text safe to store in a JSON plan)."""
    nonce = secrets.token_bytes(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, email.encode(), run_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal(key: bytes, token: str, run_id: str) -> str:
    """The email sealed by `seal` for `run_id`.

    Raises:
        ValueError: the token is damaged, or was sealed for another run or key.
    """
    raw = base64.b64decode(token)
    try:
        return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], run_id.encode()).decode()
    except InvalidTag as exc:
        raise ValueError("the sealed email cannot be opened with this key") from exc


def is_sealed(plan: Plan) -> bool:
    """Whether the plan's contact carries a sealed email."""
    contact = plan.base.get("contact")
    return isinstance(contact, Mapping) and SEALED_EMAIL in contact


def open_payload(payload: dict[str, Any], key: bytes | None, run_id: str) -> dict[str, Any]:
    """The payload with its contact's email opened (a copy; the plan is left sealed)."""
    contact = payload.get("contact")
    if not isinstance(contact, Mapping) or SEALED_EMAIL not in contact:
        return payload
    opened = {k: v for k, v in contact.items() if k != SEALED_EMAIL}
    if key is not None:
        opened["email"] = unseal(key, str(contact[SEALED_EMAIL]), run_id)
    return {**payload, "contact": opened}


def redact_sealed(text: str, plan: Plan, key: bytes) -> str:
    """`text` (a tool's error message) with the plan's sealed email replaced, any case."""
    contact = plan.base.get("contact") or {}
    run_id = str(plan.base.get("run_id", ""))
    email = unseal(key, str(contact.get(SEALED_EMAIL, "")), run_id)
    if not email:
        return text
    return re.sub(re.escape(email), "(the erased contact's email)", text, flags=re.IGNORECASE)


def with_sealed_email(plan: Plan, key: bytes, email: str, run_id: str) -> Plan:
    """The plan with `email` sealed into its contact."""
    contact = dict(plan.base.get("contact") or {})
    contact[SEALED_EMAIL] = seal(key, email, run_id)
    return Plan({**plan.base, "contact": contact}, plan.steps)


def drop_sealed(tx: WriteTx, run_id: str, plan: Plan) -> None:
    """Remove the sealed email from a finished run's stored plan."""
    if not is_sealed(plan):
        return
    contact = {k: v for k, v in plan.base["contact"].items() if k != SEALED_EMAIL}
    tx.update_plan(run_id, Plan({**plan.base, "contact": contact}, plan.steps))
