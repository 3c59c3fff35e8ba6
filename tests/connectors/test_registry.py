"""The registry: built from the real defaults, unknown kinds, and step/action checks."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from switchboard.server.config.flow import ConnectorSettings, TriggerSettings
from switchboard.server.config.settings import Settings
from switchboard.server.connectors.base import Connector, ConnectorState, purposes_of
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.purposes import served_purposes
from switchboard.server.connectors.registry import (
    DEPRECATED_KINDS,
    KINDS,
    build_registry,
    check_steps,
)


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
        "fake",
        "ga4",
        "http",
        "hubspot",
        "mailchimp",
        "sandbox_analytics",
        "sandbox_automation",
        "sandbox_crm",
        "sandbox_esp",
        "sandbox_personalization",
        "sandbox_recommendations",
        "sandbox_scoring",
        "segment",
        "ses",
        "webhook",
    }


@pytest.mark.parametrize("old", sorted(DEPRECATED_KINDS))
def test_an_old_sandbox_kind_still_loads_with_a_warning(
    settings: Settings, old: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The options the default connector of that kind runs with (some kinds require some).
    options = next(c.options for c in settings.connectors.values() if c.kind == f"sandbox_{old}")
    configs = {"mine": ConnectorSettings(kind=old, options=options)}

    with caplog.at_level(logging.WARNING, "switchboard.server.connectors.registry"):
        registry = build_registry(configs, lambda _: InMemoryState(), settings.scoring)

    assert registry["mine"].kind == f"sandbox_{old}"
    [warning] = caplog.records
    assert warning.getMessage() == (
        f"connector 'mine': kind '{old}' is deprecated; it is the simulation "
        f"'sandbox_{old}' (write kind = 'sandbox_{old}')"
    )


def test_the_default_connectors_keep_their_names_and_are_sandboxes(settings: Settings) -> None:
    registry = build_registry(settings.connectors, lambda _: InMemoryState(), settings.scoring)

    kinds = {name: c.kind for name, c in registry.items()}
    assert kinds == {
        "analytics": "sandbox_analytics",
        "automation": "sandbox_automation",
        "crm": "sandbox_crm",
        "esp": "sandbox_esp",
        "fake": "fake",
        "personalization": "sandbox_personalization",
        "recommendations": "sandbox_recommendations",
        "scoring": "sandbox_scoring",
    }
    served = {name: purposes_of(c) for name, c in registry.items() if purposes_of(c)}
    assert served == {
        "analytics": {"analytics"},
        "esp": {"email_marketing"},
        "personalization": {"personalization"},
        "recommendations": {"personalization"},
    }


def test_settings_replace_a_connectors_purposes(settings: Settings) -> None:
    configs = {
        "transactional": ConnectorSettings(kind="sandbox_esp", purposes=[]),
        "tracker": ConnectorSettings(kind="fake", purposes=["analytics", "advertising"]),
        "esp": ConnectorSettings(kind="sandbox_esp"),
    }
    registry = build_registry(configs, lambda _: InMemoryState(), settings.scoring)

    served = {name: served_purposes(c, configs[name]) for name, c in registry.items()}
    assert served == {
        "transactional": frozenset(),
        "tracker": {"analytics", "advertising"},
        "esp": {"email_marketing"},
    }


def test_an_unknown_purpose_is_rejected_with_the_known_ones(settings: Settings) -> None:
    configs = {"tracker": ConnectorSettings(kind="fake", purposes=["analytics", "email-marketing"])}

    with pytest.raises(
        ValueError,
        match=r"connector 'tracker': unknown consent purpose\(s\) 'email-marketing'; "
        r"known purposes: advertising, analytics, email_marketing, personalization, sms_marketing",
    ):
        build_registry(configs, lambda _: InMemoryState(), settings.scoring)


@pytest.mark.parametrize(
    ("purposes", "warned"),
    [
        pytest.param(None, True, id="undeclared"),
        pytest.param([], False, id="declared-none"),
        pytest.param(["analytics"], False, id="declared"),
    ],
)
def test_a_webhook_without_declared_purposes_is_pointed_out(
    settings: Settings,
    purposes: list[str] | None,
    warned: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = {"url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "A" * 32}
    configs = {"hook": ConnectorSettings(kind="webhook", options=options, purposes=purposes)}

    with caplog.at_level(logging.WARNING, "switchboard.server.connectors.purposes"):
        build_registry(configs, lambda _: InMemoryState(), settings.scoring)

    messages = [r.getMessage() for r in caplog.records]
    assert bool(messages) == warned
    if warned:
        assert "connector 'hook' (webhook) declares no consent purposes" in messages[0]


def test_unknown_kind_is_rejected(settings: Settings) -> None:
    configs = {"mail": ConnectorSettings(kind="constant_contact")}

    with pytest.raises(
        ValueError, match=r"connector 'mail': unknown kind 'constant_contact'; known kinds: "
    ):
        build_registry(configs, lambda _: InMemoryState(), settings.scoring)


def test_bad_options_name_the_connector(settings: Settings) -> None:
    options = {"max_suggestions": 0}
    configs = {"recs": ConnectorSettings(kind="sandbox_recommendations", options=options)}

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


def test_an_http_tool_with_purposes_in_its_options_is_not_pointed_out(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # The http kind requires `options.purposes`, and its steps are checked against them.
    options = {
        "base_url": "http://127.0.0.1:9",
        "purposes": ["email_marketing"],
        "actions": {"members.enroll": {"method": "POST", "url": "/members"}},
    }
    configs = {"loyalty": ConnectorSettings(kind="http", options=options)}

    with caplog.at_level(logging.WARNING, "switchboard.server.connectors.purposes"):
        registry = build_registry(configs, lambda _: InMemoryState(), settings.scoring)

    assert registry["loyalty"].purposes == frozenset({"email_marketing"})
    assert [r.getMessage() for r in caplog.records] == []
