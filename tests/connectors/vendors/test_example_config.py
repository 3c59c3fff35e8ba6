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
}


def test_example_builds_every_connector_and_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    result = check_config(EXAMPLE)
    assert result.problems == []
    assert result.settings is not None
    kinds = {c.kind for c in result.settings.connectors.values()}
    assert {"hubspot", "mailchimp", "segment", "ga4", "http"} <= kinds
    assert "loyalty.signup" in result.settings.triggers


def test_example_without_its_secrets_names_each_missing_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    problems = check_config(EXAMPLE).problems
    for name in SECRETS:
        assert any(name in p for p in problems), name
    assert any(p.startswith("connectors.hubspot") and "HUBSPOT_ACCESS_TOKEN" in p for p in problems)
