"""examples/real-tools.toml passes the same check `switchboard config check` runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.server.process.preflight import check_config

EXAMPLE = Path(__file__).parents[3] / "examples" / "real-tools.toml"
SECRETS = {
    "HUBSPOT_ACCESS_TOKEN": "pat-na1-example",
    "MAILCHIMP_API_KEY": "0123abcd-us21",
    "SEGMENT_WRITE_KEY": "test-segment",
    "GA4_API_SECRET": "test-ga4",
    "LOYALTY_CLIENT_SECRET": "test-loyalty",
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret-example",
    "AMQP_URL": "amqp://switchboard:secret@rabbit.internal:5672/marketing",
}


def test_example_builds_every_connector_and_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    result = check_config(EXAMPLE)
    assert result.problems == []
    assert result.settings is not None
    kinds = {c.kind for c in result.settings.connectors.values()}
    assert {"hubspot", "mailchimp", "segment", "ga4", "http", "ses", "amqp"} <= kinds
    assert "loyalty.signup" in result.settings.triggers


def test_example_without_its_secrets_names_each_missing_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    problems = check_config(EXAMPLE).problems
    # SES without both AWS variables falls back to the instance role: not a problem.
    for name in SECRETS.keys() - {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}:
        assert any(name in p for p in problems), name
    assert any(p.startswith("connectors.hubspot") and "HUBSPOT_ACCESS_TOKEN" in p for p in problems)
