"""examples/real-tools.toml passes the same check `switchboard config check` runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.server.process.preflight import check_config

EXAMPLE = Path(__file__).parents[3] / "examples" / "real-tools.toml"


def test_example_builds_every_connector_and_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEGMENT_WRITE_KEY", "GA4_API_SECRET", "LOYALTY_CLIENT_SECRET"):
        monkeypatch.setenv(name, f"test-{name.lower()}")
    result = check_config(EXAMPLE)
    assert result.problems == []
    assert result.settings is not None
    kinds = {c.kind for c in result.settings.connectors.values()}
    assert {"segment", "ga4", "http"} <= kinds
    assert "loyalty.signup" in result.settings.triggers


def test_example_without_its_secrets_names_each_missing_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SEGMENT_WRITE_KEY", "GA4_API_SECRET", "LOYALTY_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    problems = " ".join(check_config(EXAMPLE).problems)
    for name in ("SEGMENT_WRITE_KEY", "GA4_API_SECRET", "LOYALTY_CLIENT_SECRET"):
        assert name in problems
