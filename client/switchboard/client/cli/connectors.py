"""`switchboard connectors list`."""

from __future__ import annotations

import click

from switchboard.v1 import connectors_pb2

from ._common import (
    Connection,
    async_command,
    connection_options,
    echo_json,
    json_option,
    short_enum,
)


@click.group()
def connectors() -> None:
    """Inspect the configured connectors."""


@connectors.command("list")
@json_option
@connection_options
@async_command
async def list_connectors(conn: Connection, as_json: bool) -> None:
    """List the connectors with their kind, health and actions."""
    async with conn.client() as sb:
        found = await sb.connectors.list()
    for info in found:
        if as_json:
            echo_json(info)
            continue
        health = short_enum(connectors_pb2.ConnectorHealth.Name(info.health))
        detail = f" ({info.health_detail})" if info.health_detail else ""
        click.echo(f"{info.name:<16} {info.kind:<16} {health}{detail}  {', '.join(info.actions)}")
