"""The connector registry: one function builds every configured adapter from settings.

Adding an adapter kind is one module plus one line in `_FACTORIES`.

The embedded simulations are kinds `sandbox_*`: they keep their state in Switchboard's own
store, so `make run` needs no account, and their name says they reach no real tool. Their
old kind names (`crm`, `esp`, ...) still load, with a warning at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from switchboard.server.config.flow import ConnectorSettings, TriggerSettings, trigger_calls
from switchboard.server.config.sections import ScoringSettings
from switchboard.server.connectors.amqp import AmqpConnector
from switchboard.server.connectors.analytics import AnalyticsConnector
from switchboard.server.connectors.automation import AutomationConnector
from switchboard.server.connectors.base import Connector, ConnectorState
from switchboard.server.connectors.crm import CrmConnector
from switchboard.server.connectors.esp import EspConnector
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.connectors.ga4 import Ga4Connector
from switchboard.server.connectors.http import HttpConnector
from switchboard.server.connectors.hubspot import HubSpotConnector
from switchboard.server.connectors.mailchimp import MailchimpConnector
from switchboard.server.connectors.personalization import PersonalizationConnector
from switchboard.server.connectors.purposes import check_purposes
from switchboard.server.connectors.recommendations import RecommendationsConnector
from switchboard.server.connectors.scoring import ScoringConnector
from switchboard.server.connectors.segment import SegmentConnector
from switchboard.server.connectors.ses import SesConnector
from switchboard.server.connectors.webhook import WebhookConnector
from switchboard.server.rules.cel import CelError
from switchboard.server.rules.conditions import compile_condition

_Factory = Callable[[str, Mapping[str, Any], ConnectorState, ScoringSettings], Connector]
_Plain = Callable[[str, Mapping[str, Any], ConnectorState], Connector]


def _plain(cls: _Plain) -> _Factory:
    """Adapt a constructor that does not need the scoring rules."""
    return lambda name, options, state, _rules: cls(name, options, state)


log = logging.getLogger(__name__)

_FACTORIES: dict[str, _Factory] = {
    "amqp": _plain(AmqpConnector),
    "fake": _plain(FakeConnector),
    "ga4": _plain(Ga4Connector),
    "http": _plain(HttpConnector),
    "hubspot": _plain(HubSpotConnector),
    "mailchimp": _plain(MailchimpConnector),
    "sandbox_analytics": _plain(AnalyticsConnector),
    "sandbox_automation": _plain(AutomationConnector),
    "sandbox_crm": _plain(CrmConnector),
    "sandbox_esp": _plain(EspConnector),
    "sandbox_personalization": _plain(PersonalizationConnector),
    "sandbox_recommendations": _plain(RecommendationsConnector),
    "sandbox_scoring": ScoringConnector,
    "segment": _plain(SegmentConnector),
    "ses": _plain(SesConnector),
    "webhook": _plain(WebhookConnector),
}

KINDS: tuple[str, ...] = tuple(sorted(_FACTORIES))

#: Deprecated kind names of the sandbox simulations, and what they now are.
DEPRECATED_KINDS: dict[str, str] = {
    old: f"sandbox_{old}"
    for old in (
        "analytics", "automation", "crm", "esp", "personalization", "recommendations", "scoring"
    )
}


def build_registry(
    configs: Mapping[str, ConnectorSettings],
    state_for: Callable[[str], ConnectorState],
    scoring: ScoringSettings,
) -> dict[str, Connector]:
    """Build one adapter per configured connector, keyed by its name.

    Args:
        configs: connector settings by name.
        state_for: the state scope of the connector with the given name.
        scoring: the lead-scoring rules, for adapters of kind `scoring`.

    Raises:
        ValueError: for an unknown kind or invalid options, naming the connector.
    """
    registry: dict[str, Connector] = {}
    for name, config in configs.items():
        factory = _FACTORIES.get(_current_kind(name, config.kind))
        if factory is None:
            raise ValueError(
                f"connector {name!r}: unknown kind {config.kind!r}; known kinds: {', '.join(KINDS)}"
            )
        connector = factory(name, config.options, state_for(name), scoring)
        check_purposes(name, config, connector)
        registry[name] = connector
    return registry


def _current_kind(name: str, kind: str) -> str:
    """`kind`, or what its deprecated name now is (with a warning saying so)."""
    current = DEPRECATED_KINDS.get(kind)
    if current is None:
        return kind
    log.warning(
        "connector %r: kind %r is deprecated; it is the simulation %r (write kind = %r)",
        name,
        kind,
        current,
        current,
        extra={"fields": {"connector": name, "kind": kind, "replacement": current}},
    )
    return current


def check_steps(triggers: Mapping[str, TriggerSettings], registry: Mapping[str, Connector]) -> None:
    """Check that every trigger step (and action fallback) names an action its connector has.

    Raises:
        ValueError: naming the trigger, the step index, the connector and the action.
    """
    for event, trigger in triggers.items():
        check_conditions(event, trigger)
        for index, step in enumerate(trigger_calls(trigger)):
            _check_action(event, index, registry, step.connector, step.action)
            fallback = step.fallback
            if fallback is not None and fallback.action is not None:
                connector = fallback.connector or step.connector
                _check_action(event, index, registry, connector, fallback.action, "fallback ")


def check_conditions(event: str, trigger: TriggerSettings) -> None:
    """Compile every step's `when` condition.

    Raises:
        ValueError: naming the trigger, the step, the position and the unknown field.
    """
    for index, step in enumerate(trigger.steps):
        _check_condition(f"trigger {event!r} step {index}", step.when)
        for branch, steps in (step.wait.branches if step.wait else {}).items():
            for sub, branch_step in enumerate(steps):
                where = f"trigger {event!r} step {index} branch {branch!r} step {sub}"
                _check_condition(where, branch_step.when)


def _check_condition(where: str, expression: str | None) -> None:
    if expression is None:
        return
    try:
        compile_condition(expression)
    except CelError as exc:
        raise ValueError(f"{where}: when {expression!r}: {exc}") from None


def _check_action(
    event: str,
    index: int,
    registry: Mapping[str, Connector],
    name: str,
    action: str,
    role: str = "",
) -> None:
    where = f"trigger {event!r} step {index}: {role}connector {name!r}"
    connector = registry.get(name)
    if connector is None:
        raise ValueError(f"{where} is not configured")
    if action not in connector.actions:
        known = ", ".join(sorted(connector.actions))
        raise ValueError(f"{where} has no action {action!r} (its actions: {known})")
