"""Contact-sync rules: mapped records, write-back, and the settings that configure them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from switchboard.server.config.defaults import reference_triggers
from switchboard.server.config.settings import Settings
from switchboard.server.config.sync import SyncDestinationSettings, SyncSettings
from switchboard.server.rules.plan import Plan, PlanStep
from switchboard.server.rules.sync import StepSync, apply_write_back, map_contact
from switchboard.server.runs.sync import erasure_trigger
from switchboard.v1 import contacts_pb2

CONTACT = {
    "id": "c_1",
    "email": "a@example.com",
    "phone": "",
    "consent": {"opt_in": True},
    "attributes": {"plan": "pro"},
    "lists": [],
}


def test_without_fields_every_non_empty_field_goes_under_its_own_name() -> None:
    assert map_contact(CONTACT, StepSync()) == {
        "id": "c_1",
        "email": "a@example.com",
        "consent": {"opt_in": True},
        "attributes": {"plan": "pro"},
    }


def test_mirror_sends_empty_fields_so_the_tool_clears_them() -> None:
    mapped = map_contact(CONTACT, StepSync(mode="mirror", fields={"tel": "phone"}))
    assert mapped == {"tel": "", "id": "c_1", "consent": {"opt_in": True}}


def test_an_erased_contact_maps_to_its_id_alone() -> None:
    sync = StepSync(fields={"mail": "email", "plan": "attributes.plan"})
    assert map_contact({"id": "c_1"}, sync) == {"id": "c_1"}


def test_a_sync_step_survives_the_plan_round_trip_and_shapes_its_payload() -> None:
    sync = StepSync(fields={"mail": "email"}, write_back={"external_ids.crm": "id"})
    plan = Plan({"contact": CONTACT, "event": "contact.changed"}, (PlanStep("t", "a", sync=sync),))
    again = Plan.from_json(plan.to_json())
    assert again.steps[0].sync == sync
    payload = again.step_payload(0, {"mode": "upsert"})
    assert payload["contact"] == {"mail": "a@example.com", "id": "c_1", "consent": {"opt_in": True}}
    assert payload["params"] == {"mode": "upsert"}
    assert "sync" not in Plan({}, (PlanStep("t", "a"),)).to_json()


def test_write_back_sets_map_entries_and_adds_lists() -> None:
    contact = contacts_pb2.Contact(id="c_1", lists=["a"])
    mapping = {"external_ids.crm": "record.id", "attributes.score": "score", "lists": "lists"}
    result = {"record": {"id": 42.0}, "score": True, "lists": ["a", "news"]}
    assert apply_write_back(contact, mapping, result) == ["lists", "attributes", "external_ids"]
    assert dict(contact.external_ids) == {"crm": "42"}
    assert dict(contact.attributes) == {"score": "true"}
    assert list(contact.lists) == ["a", "news"]
    assert apply_write_back(contact, mapping, result) == []  # the same answer changes nothing


def test_write_back_of_a_value_the_contact_cannot_hold_changes_nothing() -> None:
    contact = contacts_pb2.Contact(id="c_1")
    with pytest.raises(ValueError, match="external_ids"):
        apply_write_back(contact, {"external_ids.crm": "id"}, {"id": "x" * 5000})
    assert not contact.external_ids


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"fields": {"x": "nickname"}}, "not a contact field", id="unknown-field"),
        pytest.param({"fields": {"x": "email.domain"}}, "only attributes", id="scalar-entry"),
        pytest.param({"write_back": {"email": "x"}}, "write-back target", id="bad-target"),
        pytest.param({"erase_action": None}, "erase_action is not set", id="erase-no-action"),
        pytest.param({"mode": "replace"}, "upsert", id="bad-mode"),
    ],
)
def test_bad_destinations_are_refused_with_a_reason(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        SyncDestinationSettings.model_validate({"connector": "crm", **values})


def test_a_destination_needs_a_configured_connector() -> None:
    with pytest.raises(ValidationError, match="sync destination 'x' uses connector 'nope'"):
        Settings(sync={"destinations": {"x": {"connector": "nope"}}})


def test_the_default_destination_is_dropped_with_its_connector_in_code() -> None:
    assert set(Settings().sync.destinations) == {"crm"}
    settings = Settings(connectors={"fake": {"kind": "fake"}}, triggers={})
    assert settings.sync.destinations == {}


def test_erasure_joins_the_trigger_without_sending_twice() -> None:
    trigger = reference_triggers()["contact.erased"]
    sync = SyncSettings(
        destinations={
            "crm": SyncDestinationSettings(connector="crm"),
            "tool": SyncDestinationSettings(connector="tool", erase_action="people.delete"),
            "quiet": SyncDestinationSettings(connector="quiet", events=["changed"]),
        }
    )
    joined = erasure_trigger(trigger, sync)
    assert joined is not None
    assert [(s.connector, s.action) for s in joined.steps] == [
        ("crm", "contacts.erase"),
        ("esp", "contacts.erase"),
        ("tool", "people.delete"),
    ]
    assert erasure_trigger(None, SyncSettings(destinations={})) is None
