"""Contact rules without a server: normalisation, masks, merging, change detection."""

from __future__ import annotations

import pytest

from switchboard.server.rules.contacts import (
    changed_fields,
    check_mask,
    merge,
    normalize_contact,
    same_data,
)
from switchboard.server.rules.validation import Violations
from switchboard.v1 import contacts_pb2

NOW = 1_700_000_000_000_000


def _normalized(**fields: object) -> tuple[contacts_pb2.Contact, list[str]]:
    v = Violations()
    out = normalize_contact(contacts_pb2.Contact(**fields), v, "contact.")  # type: ignore[arg-type]
    return out, [item.field for item in v.items]


def test_normalizing_trims_and_lowers_and_strips_phone_noise() -> None:
    out, problems = _normalized(
        email="  Ada@Example.COM ", phone="+44 (20) 7946-0958", country=" fr ", first_name=" Ada "
    )
    assert problems == []
    assert (out.email, out.phone, out.country, out.first_name) == (
        "ada@example.com",
        "+442079460958",
        "FR",
        "Ada",
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"email": "not-an-email"}, "contact.email", id="email"),
        pytest.param({"phone": "call me"}, "contact.phone", id="phone"),
        pytest.param({"country": "France"}, "contact.country", id="country"),
        pytest.param({"id": "x_123"}, "contact.id", id="foreign-id"),
        pytest.param({"first_name": "a" * 500}, "contact.first_name", id="too-long"),
    ],
)
def test_bad_fields_are_named_under_the_prefix(fields: dict[str, object], field: str) -> None:
    _, problems = _normalized(**fields)
    assert problems == [field]


def test_output_only_fields_from_a_caller_are_dropped() -> None:
    out, _ = _normalized(email="a@b.io", version=7)
    assert out.version == 0


def test_a_mask_may_name_only_maskable_top_level_fields() -> None:
    v = Violations()
    check_mask(["first_name", "version", "consent.opt_in"], v)
    assert [item.field for item in v.items] == ["update_mask", "update_mask"]


def test_merge_without_a_mask_keeps_what_the_update_leaves_out() -> None:
    current = contacts_pb2.Contact(
        id="c_1", email="a@b.io", first_name="Ada", lists=["news"], attributes={"plan": "free"}
    )
    incoming = contacts_pb2.Contact(last_name="Lovelace", lists=["vip"], attributes={"tier": "1"})
    out = merge(current, incoming, [], NOW)
    assert (out.first_name, out.last_name) == ("Ada", "Lovelace")
    assert list(out.lists) == ["news", "vip"]
    assert dict(out.attributes) == {"plan": "free", "tier": "1"}


def test_merge_with_a_mask_replaces_exactly_the_named_fields() -> None:
    current = contacts_pb2.Contact(id="c_1", first_name="Ada", lists=["news", "vip"])
    out = merge(current, contacts_pb2.Contact(lists=["vip"]), ["lists", "first_name"], NOW)
    assert list(out.lists) == ["vip"]
    assert out.first_name == ""  # named in the mask and unset: cleared


def test_consent_gets_the_time_it_was_given_when_the_caller_sends_none() -> None:
    incoming = contacts_pb2.Contact(consent=contacts_pb2.Consent(opt_in=True, source="form"))
    out = merge(contacts_pb2.Contact(id="c_1"), incoming, [], NOW)
    assert out.consent.opt_in
    assert out.consent.updated_at.ToMicroseconds() == NOW


def test_change_detection_ignores_timestamps_and_names_what_changed() -> None:
    before = contacts_pb2.Contact(id="c_1", email="a@b.io", first_name="Ada", version=1)
    after = contacts_pb2.Contact()
    after.CopyFrom(before)
    after.version = 2
    assert same_data(before, after)
    after.company = "Analytical Engines"
    assert not same_data(before, after)
    assert changed_fields(before, after) == ["company"]
    assert changed_fields(None, before) == ["email", "first_name"]
