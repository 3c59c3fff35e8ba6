"""Settings tests read the real environment: start each from one without SWITCHBOARD_*."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

WriteToml = Callable[[str], Path]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("SWITCHBOARD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def write_toml(tmp_path: Path) -> WriteToml:
    """Writes a settings file and returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "switchboard.toml"
        path.write_text(text)
        return path

    return write
