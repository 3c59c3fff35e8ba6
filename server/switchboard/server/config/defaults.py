"""The parsed built-in `defaults.toml`, shared by the settings modules."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any


def _load() -> dict[str, Any]:
    text = resources.files("switchboard.server.config").joinpath("defaults.toml").read_text("utf-8")
    return tomllib.loads(text)


DEFAULTS: dict[str, Any] = _load()
