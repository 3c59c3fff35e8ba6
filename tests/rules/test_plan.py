"""The typed run plan: freezing configured steps, the stored JSON, wait branches."""

from __future__ import annotations

import json

import pytest

from switchboard.server.config.flow import TriggerSettings
from switchboard.server.rules.plan import Plan, PlanFallback, PlanStep, PlanWait

# A plan as the store held it before the typed plan (model_dump of the step settings):
# runs under way at an upgrade must still read and run.
STORED_BEFORE = (
    '{"base":{"event":"application.received","run_id":"r_1","contact":{"id":"c_1"},'
    '"attributes":{"application_id":4711}},"steps":[{"connector":"crm","action":'
    '"contacts.upsert","params":{},"fallback":null,"wait":null},{"connector":"","action":'
    '"wait","params":{},"fallback":null,"wait":{"source":"underwriting","key":'
    '"attributes.application_id","timeout_s":60.0,"timeout_branch":"timeout","branches":'
    '{"approved":[{"connector":"esp","action":"lists.subscribe","params":{"list":"clients"},'
    '"fallback":{"connector":null,"action":null,"params":{},"result":{"skipped":true}}}]}}},'
    '{"connector":"analytics","action":"events.track","params":{"name":"x"},"fallback":'
    '{"connector":"webhook","action":"webhook.post","params":{},"result":null},"wait":null}]}'
)

TRIGGER = TriggerSettings.model_validate(
    {
        "steps": [
            {"connector": "crm", "action": "contacts.upsert"},
            {
                "wait": {
                    "source": "underwriting",
                    "key": "attributes.application_id",
                    "timeout_s": 60,
                    "branches": {
                        "approved": [
                            {
                                "connector": "esp",
                                "action": "lists.subscribe",
                                "params": {"list": "clients"},
                                "fallback": {"result": {"skipped": True}},
                            }
                        ]
                    },
                }
            },
            {
                "connector": "analytics",
                "action": "events.track",
                "params": {"name": "x"},
                "fallback": {"connector": "webhook", "action": "webhook.post"},
            },
        ]
    }
)


def _plan() -> Plan:
    base = {
        "event": "application.received",
        "run_id": "r_1",
        "contact": {"id": "c_1"},
        "attributes": {"application_id": 4711},
    }
    return Plan(base, tuple(PlanStep.from_settings(s) for s in TRIGGER.steps))


def test_a_plan_stored_before_the_typed_plan_reads_as_the_same_plan() -> None:
    assert Plan.from_json(STORED_BEFORE) == _plan()


def test_the_stored_form_keeps_the_shape_that_sql_and_older_rows_use() -> None:
    # Erasure rewrites `$.base.contact` in SQL; the steps keep their keys and values.
    new, old = json.loads(_plan().to_json()), json.loads(STORED_BEFORE)
    assert new["base"] == old["base"]
    assert [s["connector"] for s in new["steps"]] == [s["connector"] for s in old["steps"]]
    assert new["steps"][2] == old["steps"][2]


def test_round_trip_keeps_every_field() -> None:
    plan = _plan()
    again = Plan.from_json(plan.to_json())
    assert again == plan
    wait = again.steps[1].wait
    assert isinstance(wait, PlanWait)
    assert (wait.source, wait.key, wait.timeout_s) == (
        "underwriting",
        "attributes.application_id",
        60.0,
    )
    assert again.steps[2].fallback == PlanFallback("webhook", "webhook.post", {}, None)


def test_a_wait_step_is_frozen_with_the_action_wait_and_no_connector() -> None:
    step = _plan().steps[1]
    assert (step.connector, step.action) == ("", "wait")


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        pytest.param("approved", ["crm", "", "esp", "analytics"], id="inserted-after-the-wait"),
        pytest.param("rejected", ["crm", "", "analytics"], id="unknown-branch-adds-nothing"),
    ],
)
def test_with_branch_inserts_the_branch_steps_right_after_the_wait(
    branch: str, expected: list[str]
) -> None:
    plan = _plan()
    extended = plan.with_branch(1, branch)
    assert [s.connector for s in extended.steps] == expected
    assert [s.connector for s in plan.steps] == ["crm", "", "analytics"]  # not changed in place


def test_with_branch_on_a_step_that_is_not_a_wait_is_the_same_plan() -> None:
    plan = _plan()
    assert plan.with_branch(0, "approved") is plan
