"""The scoring adapter: payload parsing, stored result, and rule validation at build time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from switchboard.server.config.sections import ScoringSettings
from switchboard.server.config.settings import Settings
from switchboard.server.connectors.base import InvokeContext, JsonDict
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.scoring import ScoringConnector
from switchboard.server.errors import PermanentConnectorError

CTX = InvokeContext(idempotency_key="k1")


def payload(lead: JsonDict | None = None, opt_in: bool = True) -> JsonDict:
    contact = {
        "id": "c1",
        "email": "ada@example.com",
        "company": "Acme",
        "job_title": "Director of Marketing",
        "consent": {"opt_in": opt_in, "source": "web", "updated_at": ""},
    }
    body: JsonDict = {"event": "lead.status_updated", "contact": contact}
    if lead is not None:
        body["lead"] = lead
    return body


@pytest.fixture
def rules() -> ScoringSettings:
    return Settings().scoring


@pytest.fixture
def state() -> InMemoryState:
    return InMemoryState()


@pytest.fixture
def scoring(state: InMemoryState, rules: ScoringSettings) -> ScoringConnector:
    return ScoringConnector("scoring", {}, state, rules)


async def test_scores_the_contact_and_lead(scoring: ScoringConnector, state: InMemoryState) -> None:
    # A click just now: no measurable decay between building the payload and scoring it.
    just_now = datetime.now(UTC).isoformat()
    lead = {
        "status": "sql",
        "previous_status": "mql",
        "activities": [{"type": "email_click", "occurred_at": just_now, "value": 0.0}],
    }

    result = await scoring.invoke("leads.score", payload(lead), CTX)

    # email 2 + company 5 + job_title 3 + consent 5 + director 10 + click 3 + sql 20 = 48
    assert result["score"] == 48
    assert result["grade"] == "C"
    assert result["reasons"][:2] == [
        {"rule": "status.sql", "points": 20.0, "description": "lead status is sql"},
        {
            "rule": "profile.title_keyword",
            "points": 10.0,
            "description": "job title contains 'director'",
        },
    ]
    stored = await state.get("scores", "c1")
    assert stored is not None
    assert {k: stored[k] for k in result} == result


async def test_without_lead_the_status_is_new_and_consent_is_opt_in(
    scoring: ScoringConnector,
) -> None:
    opted_in = await scoring.invoke("leads.score", payload(), CTX)
    opted_out = await scoring.invoke("leads.score", payload(opt_in=False), CTX)

    assert opted_in["score"] == 25
    assert opted_out["score"] == 20
    assert "profile.consent" not in [r["rule"] for r in opted_out["reasons"]]


async def test_old_activities_decay(scoring: ScoringConnector) -> None:
    month_ago = (datetime.now(UTC) - timedelta(days=30)).replace(tzinfo=None).isoformat()
    lead = {"status": "new", "activities": [{"type": "demo_request", "occurred_at": month_ago}]}

    result = await scoring.invoke("leads.score", payload(lead), CTX)

    (reason,) = [r for r in result["reasons"] if r["rule"] == "activity.demo_request"]
    assert reason["points"] == pytest.approx(10.0, abs=0.01)


@pytest.mark.parametrize(
    ("lead", "field"),
    [
        pytest.param({"status": 3}, "lead.status", id="status-not-str"),
        pytest.param({"activities": "many"}, "lead.activities", id="activities-not-list"),
        pytest.param(
            {"activities": [{"occurred_at": "2025-01-01T00:00:00Z"}]},
            r"lead.activities\[0\].type",
            id="no-type",
        ),
        pytest.param(
            {"activities": [{"type": "email_open", "occurred_at": "yesterday"}]},
            r"lead.activities\[0\].occurred_at",
            id="bad-time",
        ),
        pytest.param(
            {"activities": [{"type": "email_open", "occurred_at": "2025-01-01", "value": "1"}]},
            r"lead.activities\[0\].value",
            id="bad-value",
        ),
    ],
)
async def test_bad_lead_fails_permanently(
    scoring: ScoringConnector, lead: JsonDict, field: str
) -> None:
    with pytest.raises(PermanentConnectorError, match=rf"'{field}'"):
        await scoring.invoke("leads.score", payload(lead), CTX)


async def test_missing_contact_fails_permanently(scoring: ScoringConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"'contact'"):
        await scoring.invoke("leads.score", {"lead": {"status": "mql"}}, CTX)


async def test_unknown_action_fails_permanently(scoring: ScoringConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"has no action 'leads.rank'"):
        await scoring.invoke("leads.rank", payload(), CTX)


@pytest.mark.parametrize(
    ("options", "update", "message"),
    [
        pytest.param({"model": "x"}, {}, "option.*'model'", id="unknown-option"),
        pytest.param({}, {"status_points": {"zombie": 1.0}}, "'zombie'", id="unknown-status"),
    ],
)
def test_bad_configuration_is_rejected(
    rules: ScoringSettings, options: dict[str, Any], update: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=rf"connector 'scoring': .*{message}"):
        ScoringConnector("scoring", options, InMemoryState(), rules.model_copy(update=update))
