"""Check a configuration as `serve` would, without starting anything (`switchboard config`).

Beyond the settings model (types, bounds, which connector a step names), `check_config`
builds each connector on in-memory state, which checks its kind and options, checks each
trigger step's action against its connector, and checks the scoring rules' keys. It opens no
store, binds no port and reads no key, certificate or JWKS file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from switchboard.server.config.flow import TriggerSettings, trigger_calls
from switchboard.server.config.layers import dotted
from switchboard.server.config.settings import ENV_PREFIX, Settings, SettingsError, load_settings
from switchboard.server.config.show import render
from switchboard.server.connectors.base import Connector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.registry import build_registry, check_steps
from switchboard.server.rules.scoring import validate_rules


@dataclass(frozen=True)
class CheckResult:
    """What `check_config` found: the settings when they load, and every problem."""

    settings: Settings | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the server would start with this configuration."""
        return self.settings is not None and not self.problems


def check_config(path: Path | None) -> CheckResult:
    """Load the settings from the defaults, `path` and the environment, and check them."""
    try:
        settings = load_settings(path)
    except SettingsError as exc:
        return CheckResult(None, exc.problems)
    problems: list[str] = []
    try:
        validate_rules(settings.scoring)
    except ValueError as exc:
        problems.append(f"scoring: {exc}")
    built: dict[str, Connector] = {}
    for name, config in settings.connectors.items():
        try:
            built |= build_registry({name: config}, lambda _: InMemoryState(), settings.scoring)
        except ValueError as exc:
            problems.append(f"{dotted(('connectors', name))}: {exc}")
    broken = settings.connectors.keys() - built
    for event, trigger in settings.triggers.items():
        if _connectors_of(trigger) & broken:
            continue  # a connector it uses did not build: that problem is listed already
        try:
            check_steps({event: trigger}, built)
        except ValueError as exc:
            problems.append(f"{dotted(('triggers', event))}: {exc}")
    return CheckResult(settings, problems)


def _connectors_of(trigger: TriggerSettings) -> set[str]:
    names = set()
    for call in trigger_calls(trigger):
        names.add(call.connector)
        if call.fallback is not None and call.fallback.connector:
            names.add(call.fallback.connector)
    return names


def show_config(path: Path | None) -> str:
    """The effective settings as TOML, secrets masked.

    Raises:
        SettingsError: the settings do not load.
    """
    sources = "built-in defaults" + (f", then {path}" if path else "")
    return render(load_settings(path), f"{sources}, then {ENV_PREFIX}* environment variables")
