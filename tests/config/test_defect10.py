"""Defect 10: a config file that adds one connector keeps the built-in ones and starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from switchboard.client import SyncSwitchboard
from switchboard.server.app.build import build_app
from switchboard.server.config.settings import load_settings
from tests.process import ServerProcess

# A webhook connector and one trigger that uses it: the whole file, no copied defaults.
ONE_CONNECTOR = """
[connectors.hook]
kind = "webhook"
options = { url = "http://127.0.0.1:9/hook", secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZg==" }
"""
ONE_TRIGGER = """
[[triggers."order.shipped".steps]]
connector = "hook"
action = "webhook.post"
"""
BUILT_IN = {"crm", "esp", "personalization", "recommendations", "analytics", "scoring"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "switchboard.toml"
    path.write_text(text)
    return path


async def test_a_file_with_one_connector_keeps_the_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, ONE_CONNECTOR + ONE_TRIGGER)
    settings = load_settings(
        path,
        listen="127.0.0.1:0",
        database={"path": str(tmp_path / "s.db")},
        auth={"enabled": False},
    )
    assert BUILT_IN | {"hook"} <= set(settings.connectors)
    assert {"newsletter.signup", "contact.erased", "order.shipped"} <= set(settings.triggers)
    app = await build_app(settings)
    try:
        await app.start()
        assert BUILT_IN | {"hook"} <= set(app.connectors)
    finally:
        await app.stop(grace_s=0.5)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    path = _write(tmp_path, ONE_CONNECTOR)
    server = ServerProcess(tmp_path / "s.db", extra_args=("--config", str(path)))
    yield server
    server.terminate()


@pytest.mark.slow
def test_serve_starts_with_a_file_holding_only_one_connector_table(
    served: ServerProcess,
) -> None:
    with SyncSwitchboard(f"127.0.0.1:{served.port}", timeout=10.0) as sb:
        names = {c.name for c in sb.connectors.list()}
    assert BUILT_IN | {"hook"} <= names
