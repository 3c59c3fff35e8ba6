"""The column values of one contact's read model row (`segment_facts`), and its CEL view.

Purchases are kept per contact and UTC day (`activity_days`); the window sums are stored
with the first day on which one of them changes without a new event (`expires_day`), so a
query first re-sums only the rows whose day has come (an indexed range), and a window is
never stale whatever time passes without activity. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from switchboard.server.rules.consent import consented
from switchboard.server.rules.segment_fields import CONSENT_KEYS, WINDOWS, consent_column
from switchboard.v1 import contacts_pb2, leads_pb2

DAY_US = 86_400 * 1_000_000
NEVER = 2**62  # expires_day of a row whose windows cannot change any more


def day_of(us: int) -> int:
    """The UTC day number of a time in microseconds."""
    return us // DAY_US


#: The contact fields `contact_columns` reads that a write can change (`created_at` never
#: changes): a write that changes none of them leaves the facts row as it is.
CONTACT_FACT_FIELDS = frozenset({"country", "attributes", "lists", "consent", "consents"})


def contact_columns(contact: contacts_pb2.Contact) -> dict[str, Any]:
    """Columns taken from the contact record itself (on every contact write: kept cheap)."""
    attributes = contact.attributes
    created = contact.created_at
    cols: dict[str, Any] = {
        "country": contact.country,
        "attributes": json.dumps(dict(attributes), sort_keys=True) if attributes else "{}",
        "attribute_count": len(attributes),
        "list_count": len(set(contact.lists)),
        "created_us": created.seconds * 1_000_000 + created.nanos // 1000,
    }
    consents = contact.consents
    for purpose in CONSENT_KEYS:
        cols[consent_column(purpose)] = int(
            consents[purpose].opt_in if purpose in consents else consented(contact, purpose)
        )
    return cols


def lead_columns(lead: leads_pb2.Lead) -> dict[str, Any]:
    """Columns taken from the contact's lead."""
    grade = leads_pb2.LeadGrade.Name(lead.grade).removeprefix("LEAD_GRADE_")
    status = leads_pb2.LeadStatus.Name(lead.status).removeprefix("LEAD_STATUS_")
    return {
        "lead_score": lead.score,
        "lead_grade": "" if grade == "UNSPECIFIED" else grade,
        "lead_status": "" if status == "UNSPECIFIED" else status,
    }


def window_columns(days: Iterable[tuple[int, int, float]], today: int) -> dict[str, Any]:
    """Window sums as of `today` from (day, purchases, amount) buckets, and when they next
    change: a bucket leaves a `d`-day window on day `bucket + d`."""
    cols: dict[str, Any] = {}
    for d in WINDOWS:
        cols[f"purchases_{d}d"] = 0
        cols[f"amount_{d}d"] = 0.0
    expires = NEVER
    for day, count, amount in days:
        for d in WINDOWS:
            if day > today - d:
                cols[f"purchases_{d}d"] += count
                cols[f"amount_{d}d"] += amount
                expires = min(expires, day + d)
    cols["expires_day"] = expires
    return cols


def _timestamp(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def activation(row: Mapping[str, Any], lists: Iterable[str]) -> dict[str, Any]:
    """The CEL variables of one read-model row: what the SQL translation must agree with."""
    out: dict[str, Any] = {
        "country": row["country"],
        "lists": sorted(set(lists)),
        # SQLite hands JSON back as text, PostgreSQL's jsonb as a dict.
        "attributes": attrs if isinstance(attrs := row["attributes"], dict) else json.loads(attrs),
        "consent": {p: bool(row[consent_column(p)]) for p in CONSENT_KEYS},
        "lead_score": int(row["lead_score"]),
        "lead_grade": row["lead_grade"],
        "lead_status": row["lead_status"],
        "purchases_total": int(row["purchases_total"]),
        "average_basket": float(row["average_basket"]),
        "last_activity": _timestamp(int(row["last_activity_us"])),
        "cart_without_order": bool(row["cart_without_order"]),
        "created_at": _timestamp(int(row["created_us"])),
    }
    for d in WINDOWS:
        out[f"purchases_{d}d"] = int(row[f"purchases_{d}d"])
        out[f"amount_{d}d"] = float(row[f"amount_{d}d"])
    return out
