"""examples/real-tools.toml: its SES and AMQP sections load and build as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.server.config.settings import load_settings
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.registry import build_registry, check_steps

EXAMPLE = Path(__file__).parents[2] / "examples" / "real-tools.toml"
MINE = ("ses", "events")


def test_the_ses_and_amqp_sections_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    monkeypatch.setenv("AMQP_URL", "amqp://switchboard:secret@rabbit.internal:5672/marketing")
    settings = load_settings(EXAMPLE)
    configs = {name: settings.connectors[name] for name in MINE}

    registry = build_registry(configs, lambda _name: InMemoryState(), settings.scoring)

    assert {name: c.kind for name, c in registry.items()} == {"ses": "ses", "events": "amqp"}
    mine = {
        e: t
        for e, t in settings.triggers.items()
        if e in ("newsletter.welcome", "purchase.receipt")
    }
    assert len(mine) == 2
    check_steps(mine, registry)
