"""Consent purposes: the vocabulary, what a contact has consented to, and whether a call may go.

A connector serves zero or more purposes (what the data it receives is used for); a contact
opts in per purpose. A call goes out only when the contact has opted in to every purpose its
connector serves. The vocabulary is closed: a typo in a connector's settings or a contact's
`consents` would otherwise read as "no consent" and silently stop (or, worse, never stop)
deliveries, so unknown names are rejected where they are written.

The legacy `Contact.consent` record is marketing-email consent: it is the same record as
`consents["email_marketing"]` (writes keep the two equal, see `rules/contacts.py`). For a
contact stored before `consents` existed, `consent` is read in its place.

Pure rules, no I/O: the dispatcher and InvokeConnector read the contact and ask here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from types import MappingProxyType

from switchboard.v1 import contacts_pb2

EMAIL_MARKETING = "email_marketing"

#: Every purpose a connector may serve and a contact may consent to, with what it covers.
PURPOSES = MappingProxyType(
    {
        EMAIL_MARKETING: "marketing email: newsletters, campaigns, list subscriptions",
        "sms_marketing": "marketing text messages",
        "analytics": "measuring behaviour and conversions",
        "personalization": "tailoring offers, content and recommendations to the person",
        "advertising": "ad targeting and audiences shared with ad platforms",
    }
)

#: Actions sent whatever the contact's consent: they carry out a person's rights (erasure,
#: withdrawal), so refusing them for want of consent would defeat their purpose.
ALWAYS_ALLOWED_ACTIONS = frozenset({"contacts.erase", "lists.unsubscribe"})


def unknown_purposes(names: Iterable[str]) -> list[str]:
    """The names, in order, that are not in the vocabulary."""
    return [name for name in names if name not in PURPOSES]


def describe_unknown(names: Collection[str]) -> str:
    """An actionable message for purpose names outside the vocabulary."""
    return (
        f"unknown consent purpose(s) {', '.join(map(repr, names))}; "
        f"known purposes: {', '.join(sorted(PURPOSES))}"
    )


def consented(contact: contacts_pb2.Contact, purpose: str) -> bool:
    """Whether the contact has opted in to `purpose` (no record: no)."""
    if purpose in contact.consents:
        return contact.consents[purpose].opt_in
    # Stored before per-purpose consent: the marketing record is the email_marketing one.
    return purpose == EMAIL_MARKETING and contact.consent.opt_in


def refusal(
    purposes: Collection[str],
    action: str,
    contact: contacts_pb2.Contact | None,
    exempt: Collection[str] = (),
) -> str | None:
    """Why a call of `action` to a connector serving `purposes` may not go, or None.

    Args:
        purposes: what the connector serves (none: the call always goes).
        action: the action; those in `ALWAYS_ALLOWED_ACTIONS` or `exempt` always go.
        contact: the contact as stored now; None when erased or unknown.
        exempt: further actions the connector declares always allowed.
    """
    if not purposes or action in ALWAYS_ALLOWED_ACTIONS or action in exempt:
        return None
    if contact is None:
        return "contact is erased or unknown: no consent"
    missing = sorted(p for p in purposes if not consented(contact, p))
    if missing:
        return f"no consent for {', '.join(missing)}"
    return None
