"""Consent rules: who has consented to what, when a call may go, and the marketing record."""

from __future__ import annotations

import pytest

from switchboard.server.rules import contacts as rules
from switchboard.server.rules.consent import consented, refusal
from switchboard.server.rules.payloads import contact_payload
from switchboard.server.rules.validation import Violations
from switchboard.v1 import contacts_pb2

Contact = contacts_pb2.Contact
Consent = contacts_pb2.Consent


def _with(**consents: bool) -> Contact:
    contact = Contact()
    for purpose, opt_in in consents.items():
        contact.consents[purpose].opt_in = opt_in
    return contact


def test_a_purpose_without_a_record_is_not_consented() -> None:
    contact = _with(analytics=True)

    assert consented(contact, "analytics")
    assert not consented(contact, "personalization")
    assert not consented(contact, "email_marketing")


def test_a_contact_stored_before_consents_reads_its_marketing_record() -> None:
    legacy = Contact(consent=Consent(opt_in=True))

    assert consented(legacy, "email_marketing")
    assert not consented(legacy, "analytics")


def test_the_per_purpose_record_wins_over_the_legacy_one() -> None:
    contact = _with(email_marketing=False)
    contact.consent.opt_in = True  # cannot happen through a write; the map is authoritative

    assert not consented(contact, "email_marketing")


@pytest.mark.parametrize(
    ("purposes", "action", "contact", "expected"),
    [
        pytest.param(set(), "contacts.upsert", None, None, id="serves-none"),
        pytest.param({"email_marketing"}, "contacts.erase", None, None, id="erasure-always"),
        pytest.param({"email_marketing"}, "lists.unsubscribe", None, None, id="withdrawal"),
        pytest.param(
            {"email_marketing"},
            "lists.subscribe",
            None,
            "contact is erased or unknown: no consent",
            id="erased",
        ),
        pytest.param(
            {"personalization", "analytics"},
            "x",
            _with(analytics=True),
            "no consent for personalization",
            id="one-missing",
        ),
        pytest.param(
            {"personalization", "analytics"},
            "x",
            _with(),
            "no consent for analytics, personalization",
            id="all-missing-sorted",
        ),
        pytest.param({"analytics"}, "x", _with(analytics=True), None, id="consented"),
    ],
)
def test_refusal(
    purposes: set[str], action: str, contact: Contact | None, expected: str | None
) -> None:
    assert refusal(purposes, action, contact) == expected


def test_a_connector_may_exempt_further_actions() -> None:
    assert refusal({"advertising"}, "audiences.remove", _with(), {"audiences.remove"}) is None


def _normalized(contact: Contact) -> Contact:
    v = Violations()
    out = rules.normalize_contact(contact, v, "contact.")
    v.raise_if_any()
    return out


def test_writing_consent_writes_the_email_marketing_record_too() -> None:
    marketing = Consent(opt_in=True, source="web")
    incoming = _normalized(Contact(email="a@example.com", consent=marketing))

    stored = rules.merge(Contact(), incoming, [], now_us=7)

    record = stored.consents["email_marketing"]
    assert (record.opt_in, record.source) == (True, "web")
    assert record.updated_at == stored.consent.updated_at
    assert record.updated_at.ToMicroseconds() == 7


def test_writing_the_email_marketing_record_writes_consent_too() -> None:
    incoming = _normalized(_with(email_marketing=True))

    stored = rules.merge(Contact(consent=Consent(opt_in=False)), incoming, [], now_us=7)

    assert stored.consent.opt_in


def test_merging_keeps_the_other_purposes() -> None:
    current = rules.merge(Contact(), _normalized(_with(analytics=True)), [], now_us=1)

    stored = rules.merge(current, _normalized(_with(personalization=True)), [], now_us=2)

    assert {p: r.opt_in for p, r in stored.consents.items()} == {
        "analytics": True,
        "personalization": True,
    }
    assert stored.consents["analytics"].updated_at.ToMicroseconds() == 1


@pytest.mark.parametrize(
    ("mask", "incoming", "marketing"),
    [
        pytest.param(["consent"], Contact(consent=Consent(opt_in=False)), False, id="consent"),
        pytest.param(["consent"], Contact(), None, id="consent-cleared"),
        pytest.param(["consents"], _with(email_marketing=False), False, id="consents"),
        pytest.param(["consents"], _with(analytics=True), None, id="consents-without-it"),
    ],
)
def test_a_masked_write_of_either_keeps_both_equal(
    mask: list[str], incoming: Contact, marketing: bool | None
) -> None:
    current = rules.merge(Contact(), _normalized(_with(email_marketing=True)), [], now_us=1)

    stored = rules.merge(current, _normalized(incoming), mask, now_us=2)

    record = stored.consents.get("email_marketing")
    assert (None if record is None else record.opt_in) == marketing
    assert stored.consent.opt_in is bool(marketing)
    assert consented(stored, "email_marketing") is bool(marketing)


def test_re_sending_the_same_consents_changes_nothing() -> None:
    current = rules.merge(Contact(), _normalized(_with(analytics=True)), [], now_us=1)

    again = rules.merge(current, _normalized(_with(analytics=True)), [], now_us=2)

    assert rules.same_data(current, again)
    assert not rules.same_data(current, rules.merge(current, _with(analytics=False), [], 3))


@pytest.mark.parametrize(
    ("contact", "field", "message"),
    [
        pytest.param(_with(ads=True), "contact.consents", "unknown consent purpose(s) 'ads'"),
        pytest.param(
            Contact(consents={"analytics": Consent(source="x" * 129)}),
            "contact.consents[analytics].source",
            "at most 128",
        ),
    ],
)
def test_bad_consents_are_violations(contact: Contact, field: str, message: str) -> None:
    v = Violations()

    rules.normalize_contact(contact, v, "contact.")

    assert [item.field for item in v.items] == [field]
    assert message in v.items[0].description


def test_consents_is_a_maskable_field_and_reported_as_changed() -> None:
    current = rules.merge(Contact(), _normalized(_with(analytics=True)), [], now_us=1)
    changed = rules.merge(current, _normalized(_with(analytics=False)), [], now_us=2)

    rules.check_mask(["consents"], v := Violations())
    assert not v.items
    assert rules.changed_fields(current, changed) == ["consents"]


def test_adapters_see_every_consent_record() -> None:
    contact = rules.merge(Contact(), _normalized(_with(analytics=True)), [], now_us=1_000_000)

    assert contact_payload(contact)["consents"] == {
        "analytics": {"opt_in": True, "source": "", "updated_at": "1970-01-01T00:00:01Z"}
    }
