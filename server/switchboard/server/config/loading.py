"""Where settings come from: defaults, a TOML file, the environment and flags, in layers.

Layers, lowest first: the defaults (the models' own), the TOML file, `SWITCHBOARD_*`
environment variables (nested keys joined with `__`, e.g. `SWITCHBOARD_DATABASE__PATH`;
tables as JSON), then command-line flags. Each layer *extends* the one below
(`layers.py`): tables merge key by key; in the named tables (connectors, triggers, ...) an
entry set to `false` is removed and one with `replace = true` replaces the entry below.
Only this module reads the environment; everything else receives `Settings`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as EnvParseError

from switchboard.server.config.layers import LayerError, dotted, extend, named_tables
from switchboard.server.config.settings import Settings, defaults

ENV_PREFIX = "SWITCHBOARD_"


class _Environment(BaseSettings, Settings):
    """Where `SWITCHBOARD_*` variables are read: Settings' fields, pydantic-settings' parser.

    Never built; it only tells `EnvSettingsSource` the prefix, the nesting and the fields.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__")


NAMED_TABLES = named_tables(Settings)
"""The tables of entries by name, whose entries a layer may remove or replace."""


class SettingsError(Exception):
    """The configuration is invalid; `problems` holds one `key.path: message` per problem."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the defaults, an optional TOML file, the environment and flags.

    Each layer extends the one below (see the module docstring); `overrides` (command-line
    flags) win over the environment, which wins over the file.

    Raises:
        SettingsError: with one line per problem, naming the key.
    """
    where = f" in {path}" if path else ""
    layers = [read_file(path) if path is not None else {}, environment(), overrides]
    values: dict[str, Any] = defaults()
    try:
        for layer in layers:
            values = extend(values, layer, NAMED_TABLES)
    except LayerError as exc:
        raise SettingsError(f"invalid configuration{where}:\n  {exc}", [str(exc)]) from exc
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc, path), problems(exc)) from exc


def read_file(path: Path) -> dict[str, Any]:
    """The tables of a TOML settings file.

    Raises:
        SettingsError: the file cannot be read or is not TOML.
    """
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc


def environment() -> dict[str, Any]:
    """The `SWITCHBOARD_*` variables as nested tables (values still text where not JSON).

    Raises:
        SettingsError: a variable that must hold JSON does not.
    """
    try:
        return EnvSettingsSource(_Environment)()
    except EnvParseError as exc:
        raise SettingsError(f"invalid environment variable: {exc}") from exc


def problems(exc: ValidationError) -> list[str]:
    """One `key.path: message` per error (no input values: they may be secrets)."""
    lines = []
    for err in exc.errors():
        loc = dotted(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return lines


def format_validation_error(exc: ValidationError, path: Path | None) -> str:
    """One readable line per problem: `key.path: message`."""
    where = f" in {path}" if path else ""
    return "\n".join([f"invalid configuration{where}:", *(f"  {p}" for p in problems(exc))])
