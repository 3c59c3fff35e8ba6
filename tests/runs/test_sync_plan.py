"""A change run's plan: stored exactly as any plan is, its steps encoded once per shape."""

from __future__ import annotations

import json

from switchboard.server.config.sync import SyncSettings
from switchboard.server.rules.plan import Plan
from switchboard.server.runs.outcome import _struct
from switchboard.server.runs.sync import SyncFanout, _base, _ShapedPlan
from switchboard.v1 import contacts_pb2


def test_a_shaped_plan_is_stored_as_plan_to_json_would_store_it() -> None:
    sync = SyncSettings.model_validate(
        {
            "destinations": {
                "crm": {"connector": "crm", "write_back": {"external_ids.crm": "id"}},
                "tool": {"connector": "tool", "mode": "mirror", "fields": {"mail": "email"}},
            }
        }
    )
    fanout = SyncFanout(sync)
    contact = contacts_pb2.Contact(id="c1", email="a@example.com", first_name="Ann")
    shape = fanout._shape(contact)
    assert shape is not None

    base = _base("r1", contact, {"version": 1, "fields": ["email"], "changes": 1})
    shaped = _ShapedPlan(base, shape.steps, shape.steps_json)
    assert shaped.to_json() == Plan(base, shape.steps).to_json()
    assert Plan.from_json(shaped.to_json()) == Plan.from_json(Plan(base, shape.steps).to_json())


def test_a_result_struct_is_the_same_with_or_without_the_json_round_trip() -> None:
    for value in ({"id": "x", "n": 3, "ok": True, "none": None, "f": 1.5}, {"ids": (1, 2)}):
        expected = _struct({})
        expected.update(json.loads(json.dumps(value)))
        assert _struct(value) == expected
