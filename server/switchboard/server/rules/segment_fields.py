"""The fields a segment expression may name: one contact's read model, as CEL sees it.

Each scalar field is one typed column of the `segment_facts` table, so a translated
expression filters on columns (and their indexes) instead of decoding contacts. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from switchboard.server.rules.consent import PURPOSES


class Kind(Enum):
    """A CEL type the subset knows."""

    INT = "int"
    DOUBLE = "double"
    STRING = "string"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    STRING_LIST = "list(string)"
    STRING_MAP = "map(string, string)"
    BOOL_MAP = "map(string, bool)"

    @property
    def numeric(self) -> bool:
        """Whether values of this kind compare with numbers."""
        return self in (Kind.INT, Kind.DOUBLE)


@dataclass(frozen=True, slots=True)
class Field:
    """One top-level variable of a segment expression."""

    name: str
    kind: Kind
    column: str  # in segment_facts; "" for the collections handled apart
    doc: str


WINDOWS = (30, 90, 365)

FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("country", Kind.STRING, "country", "ISO 3166-1 alpha-2 code, e.g. FR"),
        Field("lists", Kind.STRING_LIST, "", 'list names, e.g. "vip" in lists'),
        Field("attributes", Kind.STRING_MAP, "", "free-form attributes, e.g. attributes.plan"),
        Field("consent", Kind.BOOL_MAP, "", "opt-in per purpose, e.g. consent.email_marketing"),
        Field("lead_score", Kind.INT, "lead_score", "latest lead score (0 if never scored)"),
        Field("lead_grade", Kind.STRING, "lead_grade", 'A, B, C, D, or "" if never scored'),
        Field("lead_status", Kind.STRING, "lead_status", "NEW, MQL, SQL, OPPORTUNITY, ..."),
        *(
            Field(f"purchases_{d}d", Kind.INT, f"purchases_{d}d", f"purchases in {d} days")
            for d in WINDOWS
        ),
        *(
            Field(f"amount_{d}d", Kind.DOUBLE, f"amount_{d}d", f"purchase value in {d} days")
            for d in WINDOWS
        ),
        Field("purchases_total", Kind.INT, "purchases_total", "purchases ever"),
        Field("average_basket", Kind.DOUBLE, "average_basket", "purchase value per purchase"),
        Field(
            "last_activity", Kind.TIMESTAMP, "last_activity_us", "latest activity (epoch if none)"
        ),
        Field(
            "cart_without_order",
            Kind.BOOL,
            "cart_without_order",
            "an add-to-cart with no purchase since",
        ),
        Field("created_at", Kind.TIMESTAMP, "created_us", "when the contact was created"),
    )
}

CONSENT_KEYS = tuple(sorted(PURPOSES))


_CONSENT_COLUMNS = {purpose: f"consent_{purpose}" for purpose in CONSENT_KEYS}


def consent_column(purpose: str) -> str:
    """The facts column holding opt-in for `purpose`."""
    return _CONSENT_COLUMNS[purpose]


def known_fields() -> str:
    """The field names, for error messages."""
    return ", ".join(FIELDS)
