"""Settings for what flows through Switchboard: connectors, triggers and inbound webhooks."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from switchboard.server.common.signing import decode_secret
from switchboard.server.config.base import FrozenModel

_VARIANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ConnectorSettings(FrozenModel):
    """One configured adapter."""

    kind: str = Field(
        description="Adapter type: sandbox_crm, sandbox_esp, ..., webhook or fake "
        "(the old sandbox names crm, esp, ... still load, with a warning)."
    )
    timeout_s: float = Field(default=5.0, gt=0, description="Per-attempt timeout.")
    max_attempts: int | None = Field(default=None, ge=1, le=100, description="Overrides dispatch.")
    base_backoff_s: float | None = Field(default=None, ge=0, description="Overrides dispatch.")
    max_backoff_s: float | None = Field(default=None, ge=0, description="Overrides dispatch.")
    max_concurrency: int | None = Field(
        default=None, ge=1, le=1000, description="Steps in flight; overrides dispatch."
    )
    rate_per_s: float | None = Field(
        default=None, gt=0, description="Calls per second (token bucket); none: unlimited."
    )
    rate_burst: int = Field(default=1, ge=1, description="Calls allowed at once above the rate.")
    daily_quota: int | None = Field(
        default=None,
        ge=1,
        description="Calls per UTC day (interactive before bulk, see "
        "connector_limits.interactive_share); none: no quota.",
    )
    breaker_failures: int | None = Field(default=None, ge=1, description="Overrides dispatch.")
    breaker_cooldown_s: float | None = Field(default=None, gt=0, description="Overrides dispatch.")
    ordered: bool | None = Field(
        default=None, description="Per-contact ordering; overrides dispatch.per_contact_ordering."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter-specific options.")
    purposes: list[str] | None = Field(
        default=None,
        description="Consent purposes it serves (email_marketing, sms_marketing, analytics, "
        "personalization, advertising); replaces the kind's own; [] serves none.",
    )


class FallbackSettings(FrozenModel):
    """What a step does when its connector fails for good: another action, or a fixed result."""

    connector: str | None = Field(
        default=None, description="Fallback connector (default: the step's)."
    )
    action: str | None = Field(default=None, description="Fallback action.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The fallback action's params."
    )
    result: dict[str, Any] | None = Field(default=None, description="A fixed result instead.")

    @model_validator(mode="after")
    def _one_kind(self) -> FallbackSettings:
        if (self.action is None) == (self.result is None):
            raise ValueError("a fallback needs exactly one of 'action' or 'result'")
        return self


_WHEN = (
    "A CEL condition over contact, lead, attributes and variant, checked when the step "
    "becomes due; false: the step is SKIPPED (docs/variants.md)."
)


class BranchStepSettings(FrozenModel):
    """One connector call inside a wait step's branch."""

    connector: str = Field(description="A configured connector's name.")
    action: str = Field(description="One of the connector's actions.")
    params: dict[str, Any] = Field(default_factory=dict, description="Passed to the action.")
    fallback: FallbackSettings | None = Field(default=None, description="Used when it fails.")
    when: str | None = Field(default=None, description=_WHEN)


class WaitSettings(FrozenModel):
    """Pause the run until an inbound event with the same key arrives, or a timeout."""

    source: str = Field(description="The inbound source whose events resume this wait.")
    key: str = Field(description="Dotted path in the run's payload, e.g. attributes.app_id.")
    timeout_s: float = Field(gt=0, description="Seconds before the timeout branch is taken.")
    timeout_branch: str = Field(default="timeout", description="Branch taken on timeout.")
    branches: dict[str, list[BranchStepSettings]] = Field(
        default_factory=dict, description="Steps run after the wait, by branch name."
    )


class StepSettings(FrozenModel):
    """One connector call of a trigger, or a wait (then connector and action stay empty)."""

    connector: str = ""
    action: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    fallback: FallbackSettings | None = None
    wait: WaitSettings | None = None
    when: str | None = Field(default=None, description=_WHEN)

    @model_validator(mode="after")
    def _call_or_wait(self) -> StepSettings:
        if (self.wait is None) != bool(self.connector and self.action):
            raise ValueError("a step needs a connector and an action, or a wait (not both)")
        return self


class VariantSettings(FrozenModel):
    """One arm of an A/B test: its share of contacts and what it changes in the steps."""

    weight: int = Field(ge=0, le=1_000_000, description="Relative share of contacts.")
    params: dict[int, dict[str, Any]] = Field(
        default={},
        description="Step index -> params merged over that step's own, e.g. "
        '`{0 = {template = "welcome_b"}}`.',
    )


class TriggerSettings(FrozenModel):
    """An event name's ordered steps."""

    description: str = Field(default="", description="What the flow is for.")
    steps: list[StepSettings] = Field(min_length=1, description="Run in order.")
    variants: dict[str, VariantSettings] = Field(
        default={},
        description="A/B variants by name: `a = 50` (a weight) or a table with weight and "
        "params; each contact gets one, always the same (docs/variants.md).",
    )
    conversion: str = Field(
        default="",
        description="The activity type counted as a conversion in GetVariantResults, "
        "e.g. purchase.",
    )

    @field_validator("variants", mode="before")
    @classmethod
    def _weights_alone(cls, value: Any) -> Any:
        # `a = 50` is short for `a = {weight = 50}`.
        if isinstance(value, dict):
            return {k: {"weight": v} if isinstance(v, int) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _variants_fit(self) -> TriggerSettings:
        for name, variant in self.variants.items():
            if not _VARIANT.match(name):
                raise ValueError(f"variant {name!r}: use letters, digits, '_' or '-' (at most 64)")
            for index in variant.params:
                if not 0 <= index < len(self.steps):
                    raise ValueError(
                        f"variant {name!r} changes step {index}, but the trigger has "
                        f"{len(self.steps)} steps (0 to {len(self.steps) - 1})"
                    )
        if self.variants and not sum(v.weight for v in self.variants.values()):
            raise ValueError("variants: at least one weight must be above 0")
        return self


class InboundSourceSettings(FrozenModel):
    """One third-party app sending webhooks to `POST /webhooks/<name>`."""

    secrets: list[str] = Field(
        min_length=1, description="`whsec_…` secrets; several are accepted while rotating."
    )
    event: str | None = Field(
        default=None, description="The trigger started for each accepted webhook, if any."
    )
    correlation_field: str | None = Field(
        default=None, description="Dotted path of the key that resumes matching wait steps."
    )
    branch_field: str = Field(
        default="branch", description="Dotted path of the branch name a resumed wait takes."
    )
    email_field: str = Field(
        default="email", description="Dotted path of the contact's email in the JSON body."
    )

    @field_validator("secrets")
    @classmethod
    def _secrets_decode(cls, value: list[str]) -> list[str]:
        for secret in value:
            decode_secret(secret)
        return value


class InboundSettings(FrozenModel):
    """The inbound webhook endpoint (HTTP, same process, its own port)."""

    listen: str = Field(
        default="",
        description="host:port for inbound webhooks; empty: the endpoint is off.",
    )
    max_body_bytes: int = Field(default=262144, ge=1, description="Larger bodies: 413.")
    tolerance_s: float = Field(
        default=300.0,
        gt=0,
        description="Accepted clock difference for webhook-timestamp.",
    )
    sources: dict[str, InboundSourceSettings] = Field(
        default={}, description="Senders by name (the URL path segment)."
    )


def _calls(steps: list[StepSettings]) -> list[StepSettings | BranchStepSettings]:
    """Every connector call of a trigger: its steps and the steps of its waits' branches."""
    calls: list[StepSettings | BranchStepSettings] = []
    for step in steps:
        if step.wait is None:
            calls.append(step)
        else:
            for branch in step.wait.branches.values():
                calls.extend(branch)
    return calls


def trigger_calls(trigger: TriggerSettings) -> list[StepSettings | BranchStepSettings]:
    """Every connector call a trigger can make (for configuration checks)."""
    return _calls(trigger.steps)
