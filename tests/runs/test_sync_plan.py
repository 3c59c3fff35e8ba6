"""A change run's plan: stored exactly as any plan is, its steps encoded once per shape."""

from __future__ import annotations

import json

import pytest

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
    shape = fanout._all.shape(contact)
    assert shape is not None

    base = _base("r1", contact, {"version": 1, "fields": ["email"], "changes": 1})
    shaped = _ShapedPlan(base, shape.steps, shape.steps_json)
    assert shaped.to_json() == Plan(base, shape.steps).to_json()
    assert Plan.from_json(shaped.to_json()) == Plan.from_json(Plan(base, shape.steps).to_json())


def _two_destinations(chunk_runs: str) -> SyncSettings:
    return SyncSettings.model_validate(
        {
            "chunk_runs": chunk_runs,
            "destinations": {"crm": {"connector": "crm"}, "tool": {"connector": "tool"}},
        }
    )


def _connectors(shape: object) -> list[str]:
    return [s.connector for s in getattr(shape, "steps", ())]


@pytest.mark.parametrize(
    ("chunk_runs", "chunked", "single"),
    [
        pytest.param("auto", ["crm"], ["tool"], id="auto-splits-by-batch-call"),
        pytest.param("on", ["crm", "tool"], [], id="on-chunks-every-destination"),
        pytest.param("off", [], ["crm", "tool"], id="off-runs-per-contact"),
    ],
)
def test_an_import_chunks_the_destinations_chunk_runs_names(
    chunk_runs: str, chunked: list[str], single: list[str]
) -> None:
    fanout = SyncFanout(_two_destinations(chunk_runs), {("crm", "contacts.upsert")})
    contact = contacts_pb2.Contact(id="c1", email="a@example.com")
    assert _connectors(fanout._chunked.shape(contact)) == chunked
    assert _connectors(fanout._single.shape(contact)) == single
    assert _connectors(fanout._all.shape(contact)) == ["crm", "tool"]  # interactive writes
    assert fanout.chunks is bool(chunked)


@pytest.mark.parametrize(
    ("given", "expected"),
    [(True, "on"), (False, "off"), ("true", "on"), ("false", "off"), ("auto", "auto")],
)
def test_a_boolean_chunk_runs_keeps_its_old_meaning(given: object, expected: str) -> None:
    assert SyncSettings.model_validate({"chunk_runs": given}).chunk_runs == expected
    assert SyncSettings().chunk_runs == "auto"


def test_a_result_struct_is_the_same_with_or_without_the_json_round_trip() -> None:
    for value in ({"id": "x", "n": 3, "ok": True, "none": None, "f": 1.5}, {"ids": (1, 2)}):
        expected = _struct({})
        expected.update(json.loads(json.dumps(value)))
        assert _struct(value) == expected
