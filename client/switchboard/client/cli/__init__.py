"""The `switchboard` command: the client commands, plus whatever installed packages add.

The client package owns the group. A package that installs more commands (the server adds
`serve` and `new-api-key`) declares them in the `switchboard.cli` entry-point group; they
are loaded only when asked for, so `switchboard contacts import` never imports the server.
With only `switchboard-client` installed, the group offers the client commands alone.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import click

from .admin import admin
from .campaigns import runs, trigger, triggers
from .connectors import connectors
from .contacts import contacts
from .dead_letters import dead_letters
from .events import data_export, events
from .leads import leads
from .segments import segments

__all__ = ["ENTRY_POINT_GROUP", "main"]

#: Entry-point group through which other packages add commands to `switchboard`.
ENTRY_POINT_GROUP = "switchboard.cli"


def _version() -> str:
    for distribution in ("switchboard", "switchboard-client"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


class _PluggableGroup(click.Group):
    """A click group that adds the commands of the `switchboard.cli` entry points lazily."""

    def _plugins(self) -> dict[str, importlib.metadata.EntryPoint]:
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        # Commands built in here win over a plugin of the same name.
        return {ep.name: ep for ep in found if ep.name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry_point = self._plugins().get(cmd_name)
        if entry_point is None:
            return None
        loaded: Any = entry_point.load()
        if not isinstance(loaded, click.Command):
            raise click.ClickException(
                f"entry point {entry_point.value!r} ({ENTRY_POINT_GROUP}) is not a click command"
            )
        return loaded


@click.group(cls=_PluggableGroup)
@click.version_option(version=_version(), prog_name="switchboard")
def main() -> None:
    """Switchboard: one gRPC endpoint for contact sync, lead scoring and campaign triggers."""


for _command in (
    contacts,
    leads,
    trigger,
    triggers,
    runs,
    connectors,
    dead_letters,
    events,
    segments,
    admin,
):
    main.add_command(_command)
del _command
contacts.add_command(data_export)
