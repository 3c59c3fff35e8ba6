"""The JSON shapes connectors receive (see connectors.base for the contract)."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from switchboard.server.common.timeutil import iso, to_us
from switchboard.v1 import contacts_pb2


def contact_payload(c: contacts_pb2.Contact) -> dict[str, Any]:
    """A contact as adapters see it: plain fields, ISO times, no protobuf types."""
    consent_at = to_us(c.consent.updated_at) if c.consent.HasField("updated_at") else 0
    return {
        "id": c.id,
        "email": c.email,
        "phone": c.phone,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "company": c.company,
        "job_title": c.job_title,
        "country": c.country,
        "consent": {
            "opt_in": c.consent.opt_in,
            "source": c.consent.source,
            "updated_at": iso(consent_at),
        },
        "consents": {
            purpose: {
                "opt_in": record.opt_in,
                "source": record.source,
                "updated_at": iso(to_us(record.updated_at) if record.HasField("updated_at") else 0),
            }
            for purpose, record in sorted(c.consents.items())
        },
        "lists": list(c.lists),
        "attributes": dict(c.attributes),
        "external_ids": dict(c.external_ids),
    }


def struct_dict(value: Struct) -> dict[str, Any]:
    """A Struct as a plain dict."""
    return dict(json_format.MessageToDict(value))


def profile(c: contacts_pb2.Contact) -> dict[str, Any]:
    """What the scoring rules may look at."""
    return {
        "email": c.email,
        "phone": c.phone,
        "company": c.company,
        "job_title": c.job_title,
        "consent": c.consent.opt_in,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "country": c.country,
    }
