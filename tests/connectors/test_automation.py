"""The automation adapter: follow-ups started once per contact and status."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.server.connectors.automation import AutomationConnector
from switchboard.server.connectors.base import InvokeContext, JsonDict
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.errors import PermanentConnectorError

CTX = InvokeContext(idempotency_key="k1")
FOLLOWUPS = {"mql": ["nurture.sequence"], "sql": ["sales.call_task", "sales.intro_email"]}


def payload(status: str, contact_id: str = "c1") -> JsonDict:
    return {"contact": {"id": contact_id}, "lead": {"status": status, "activities": []}}


@pytest.fixture
def automation() -> AutomationConnector:
    return AutomationConnector("automation", {"followups": FOLLOWUPS}, InMemoryState())


async def test_followups_start_once_per_contact_and_status(
    automation: AutomationConnector,
) -> None:
    first = await automation.invoke("followups.start", payload("sql"), CTX)
    again = await automation.invoke("followups.start", payload("sql"), CTX)
    other_contact = await automation.invoke("followups.start", payload("sql", "c2"), CTX)

    assert first == {
        "status": "sql",
        "started": ["sales.call_task", "sales.intro_email"],
        "already_started": [],
    }
    assert again == {
        "status": "sql",
        "started": [],
        "already_started": ["sales.call_task", "sales.intro_email"],
    }
    assert other_contact == first


async def test_each_status_has_its_own_followups(automation: AutomationConnector) -> None:
    await automation.invoke("followups.start", payload("mql"), CTX)

    result = await automation.invoke("followups.start", payload("sql"), CTX)
    unconfigured = await automation.invoke("followups.start", payload("lost"), CTX)

    assert result["started"] == ["sales.call_task", "sales.intro_email"]
    assert unconfigured == {"status": "lost", "started": [], "already_started": []}


async def test_newly_configured_followups_start_for_a_repeat_status() -> None:
    state = InMemoryState()
    before = AutomationConnector("a", {"followups": {"mql": ["one"]}}, state)
    after = AutomationConnector("a", {"followups": {"mql": ["one", "two"]}}, state)
    await before.invoke("followups.start", payload("mql"), CTX)

    result = await after.invoke("followups.start", payload("mql"), CTX)

    assert result == {"status": "mql", "started": ["two"], "already_started": ["one"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"contact": {"id": "c1"}}, "lead", id="no-lead"),
        pytest.param({"contact": {"id": "c1"}, "lead": {}}, "status", id="no-status"),
        pytest.param({"lead": {"status": "mql"}}, "contact", id="no-contact"),
    ],
)
async def test_bad_payload_fails_permanently(
    automation: AutomationConnector, body: JsonDict, field: str
) -> None:
    with pytest.raises(PermanentConnectorError, match=rf"'{field}'"):
        await automation.invoke("followups.start", body, CTX)


async def test_unknown_action_fails_permanently(automation: AutomationConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"has no action 'followups.stop'"):
        await automation.invoke("followups.stop", payload("mql"), CTX)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"followups": ["a"]}, "option 'followups'", id="not-a-mapping"),
        pytest.param({"followups": {"zombie": ["a"]}}, "'zombie'", id="unknown-status"),
        pytest.param({"followups": {"mql": "a"}}, "option 'followups'", id="names-not-list"),
        pytest.param({"followups": {"mql": [""]}}, "option 'followups'", id="empty-name"),
        pytest.param({"delay": 3}, "option.*'delay'", id="unknown-option"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=rf"connector 'a': .*{message}"):
        AutomationConnector("a", options, InMemoryState())
