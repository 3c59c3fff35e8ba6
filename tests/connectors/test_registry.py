"""The registry: built from the real defaults, unknown kinds, and step/action checks."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.server.config.flow import ConnectorSettings, TriggerSettings
from switchboard.server.config.settings import Settings
from switchboard.server.connectors.base import Connector, ConnectorState
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.registry import KINDS, build_registry, check_steps


@pytest.fixture
def settings() -> Settings:
    return Settings()


def test_builds_every_default_connector_and_the_default_triggers_check(
    settings: Settings,
) -> None:
    scopes: list[str] = []

    def state_for(name: str) -> ConnectorState:
        scopes.append(name)
        return InMemoryState()

    registry = build_registry(settings.connectors, state_for, settings.scoring)
    check_steps(settings.triggers, registry)

    assert set(registry) == set(settings.connectors)
    assert sorted(scopes) == sorted(settings.connectors)
    for name, connector in registry.items():
        assert isinstance(connector, Connector)
        assert (connector.name, connector.kind) == (name, settings.connectors[name].kind)


def test_kinds_are_sorted_and_cover_the_builtins() -> None:
    assert list(KINDS) == sorted(KINDS)
    assert set(KINDS) == {
        "amqp",
        "analytics",
        "automation",
        "crm",
        "esp",
        "fake",
        "ga4",
        "http",
        "hubspot",
        "mailchimp",
        "personalization",
        "recommendations",
        "scoring",
        "segment",
        "ses",
        "webhook",
    }


def test_unknown_kind_is_rejected(settings: Settings) -> None:
    configs = {"mail": ConnectorSettings(kind="constant_contact")}

    with pytest.raises(
        ValueError, match=r"connector 'mail': unknown kind 'constant_contact'; known kinds: "
    ):
        build_registry(configs, lambda _: InMemoryState(), settings.scoring)


def test_bad_options_name_the_connector(settings: Settings) -> None:
    configs = {"recs": ConnectorSettings(kind="recommendations", options={"max_suggestions": 0})}

    with pytest.raises(ValueError, match=r"connector 'recs': option 'max_suggestions'"):
        build_registry(configs, lambda _: InMemoryState(), settings.scoring)


def trigger(step: dict[str, Any]) -> dict[str, TriggerSettings]:
    steps = [{"connector": "f", "action": "echo"}, step]
    return {"signup": TriggerSettings.model_validate({"steps": steps})}


@pytest.mark.parametrize(
    ("step", "message"),
    [
        pytest.param(
            {"connector": "f", "action": "lists.subscribe"},
            "trigger 'signup' step 1: connector 'f' has no action 'lists.subscribe'",
            id="step-action",
        ),
        pytest.param(
            {"connector": "f", "action": "echo", "fallback": {"action": "offers.show"}},
            "trigger 'signup' step 1: fallback connector 'f' has no action 'offers.show'",
            id="fallback-action",
        ),
        pytest.param(
            {"connector": "f", "action": "echo", "fallback": {"connector": "g", "action": "x"}},
            "trigger 'signup' step 1: fallback connector 'g' is not configured",
            id="fallback-connector",
        ),
    ],
)
def test_check_steps_names_trigger_step_and_action(step: dict[str, Any], message: str) -> None:
    registry = {"f": FakeConnector("f", {}, InMemoryState())}

    with pytest.raises(ValueError, match=message):
        check_steps(trigger(step), registry)


def test_check_steps_accepts_fallback_results_and_known_actions() -> None:
    registry = {"f": FakeConnector("f", {"actions": ["offers.show"]}, InMemoryState())}
    step = {"connector": "f", "action": "offers.show", "fallback": {"result": {"offer": "X"}}}

    check_steps(trigger(step), registry)
