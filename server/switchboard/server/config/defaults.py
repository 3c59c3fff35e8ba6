"""The built-in tables: connectors, flows and scoring rules that `make run` serves with no file.

These are the defaults of `Settings.connectors`, `Settings.triggers` and the
`Settings.scoring` tables, written as typed settings so that they are checked like any other
default. A user's file extends them (see `layers.py`); `switchboard config show` prints them
as TOML.
"""

from __future__ import annotations

from switchboard.server.config.flow import (
    ConnectorSettings,
    FallbackSettings,
    StepSettings,
    TriggerSettings,
)

_WELCOME = {
    "subject": "Welcome, $first_name",
    "text": "Hello $first_name,\n\nthank you for subscribing to our newsletter.\n",
}
_FOLLOWUPS = {
    "mql": ["nurture.sequence"],
    "sql": ["sales.call_task", "sales.intro_email"],
    "opportunity": ["sales.proposal_reminder"],
    "customer": ["onboarding.sequence"],
    "lost": ["winback.sequence"],
}


# Lead scoring rules (points before decay); copied into each `ScoringSettings`.
ACTIVITY_POINTS: dict[str, float] = {
    "email_open": 1.0,
    "email_click": 3.0,
    "page_view": 1.0,
    "form_submit": 10.0,
    "purchase": 15.0,
    "event_attended": 8.0,
    "demo_request": 20.0,
    "unsubscribe": -10.0,
}
PROFILE_POINTS: dict[str, float] = {
    "email": 2.0,
    "phone": 3.0,
    "company": 5.0,
    "job_title": 3.0,
    "consent": 5.0,
}
TITLE_KEYWORDS: dict[str, float] = {
    "chief": 15.0,
    "vp": 12.0,
    "director": 10.0,
    "head": 8.0,
    "manager": 5.0,
}
STATUS_POINTS: dict[str, float] = {
    "new": 0.0,
    "mql": 10.0,
    "sql": 20.0,
    "opportunity": 25.0,
    "customer": 30.0,
    "lost": -20.0,
}


def built_in_connectors() -> dict[str, ConnectorSettings]:
    """Connectors that keep their state in the store, so the flows work on a fresh machine.

    They are the `sandbox_*` simulations under the plain names flows and callers use
    (`crm`, `esp`, ...): pointing a name at a real tool is a change of kind, not of flows.
    `esp` sends mail once `options.smtp` is set (`{host, port, sender, ...}`); `fake` is
    scriptable, for tests and demos.
    """
    offers = {"newsletter": "WELCOME10", "customer": "LOYALTY15"}
    return {
        "crm": ConnectorSettings(kind="sandbox_crm"),
        "esp": ConnectorSettings(
            kind="sandbox_esp", options={"templates": {"welcome": dict(_WELCOME)}}
        ),
        "personalization": ConnectorSettings(
            kind="sandbox_personalization",
            options={"default_offer": "WELCOME-DEFAULT", "offers": offers},
        ),
        "recommendations": ConnectorSettings(
            kind="sandbox_recommendations", options={"max_suggestions": 5}
        ),
        "analytics": ConnectorSettings(kind="sandbox_analytics"),
        "scoring": ConnectorSettings(kind="sandbox_scoring"),
        "automation": ConnectorSettings(
            kind="sandbox_automation",
            options={"followups": {status: list(v) for status, v in _FOLLOWUPS.items()}},
        ),
        "fake": ConnectorSettings(kind="fake"),
    }


def _call(connector: str, action: str, **extra: object) -> StepSettings:
    return StepSettings.model_validate({"connector": connector, "action": action, **extra})


def reference_triggers() -> dict[str, TriggerSettings]:
    """The three reference flows, and the erasure flow that `DeleteContact` starts."""
    default_offer = FallbackSettings(result={"offer": "WELCOME-DEFAULT", "source": "fallback"})
    return {
        "newsletter.signup": TriggerSettings(
            description="Web site newsletter signup: contact added to the CRM, subscribed, "
            "welcome offer shown.",
            steps=[
                _call("crm", "contacts.upsert"),
                _call("esp", "lists.subscribe", params={"list": "newsletter"}),
                _call(
                    "personalization",
                    "offers.show",
                    params={"segment": "newsletter"},
                    fallback=default_offer,
                ),
            ],
        ),
        "lead.status_updated": TriggerSettings(
            description="CRM lead status change: lead re-scored, follow-up actions started.",
            steps=[_call("scoring", "leads.score"), _call("automation", "followups.start")],
        ),
        "purchase.completed": TriggerSettings(
            description="Online purchase: purchase history updated, suggestions refreshed, "
            "conversion tracked.",
            steps=[
                _call("crm", "purchases.record"),
                _call("recommendations", "suggestions.refresh"),
                _call("analytics", "conversions.track"),
            ],
        ),
        # Its payload carries only the contact id: connected tools forget the person too.
        "contact.erased": TriggerSettings(
            description="A contact was erased: remove the person from every connected tool.",
            steps=[_call("crm", "contacts.erase"), _call("esp", "contacts.erase")],
        ),
    }
