"""examples/real-tools.toml: the server accepts it, and its secrets are references."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.server.process.preflight import check_config

EXAMPLE = Path(__file__).parents[3] / "examples" / "real-tools.toml"


def test_the_example_checks_ok_with_its_secrets_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-example")
    monkeypatch.setenv("MAILCHIMP_API_KEY", "0123abcd-us21")
    result = check_config(EXAMPLE)
    assert result.problems == []
    assert result.settings is not None
    assert {"hubspot", "mailchimp"} <= set(result.settings.connectors)


def test_a_missing_secret_is_named_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("MAILCHIMP_API_KEY", "0123abcd-us21")
    result = check_config(EXAMPLE)
    assert any(
        "HUBSPOT_ACCESS_TOKEN" in p and p.startswith("connectors.hubspot") for p in result.problems
    )
