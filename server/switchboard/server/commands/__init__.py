"""The client commands of `switchboard`: they talk to a running server through the client.

`register(main)` adds them to the `switchboard` group; `serve` lives in `cli`.
"""

from __future__ import annotations

import click

from .campaigns import runs, trigger
from .connectors import connectors
from .contacts import contacts
from .dead_letters import dead_letters
from .leads import leads

__all__ = ["register"]


def register(group: click.Group) -> None:
    """Adds `contacts`, `leads`, `trigger`, `runs`, `connectors` and `dead-letters`."""
    for command in (contacts, leads, trigger, runs, connectors, dead_letters):
        group.add_command(command)
