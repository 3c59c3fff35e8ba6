"""`switchboard connectors list` and `switchboard connectors backfill`."""

from __future__ import annotations

from datetime import UTC, datetime

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


@connectors.command()
@click.argument("name")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Only contacts changed at or after this date (UTC).",
)
@click.option("--restart", is_flag=True, help="Start over instead of continuing.")
@click.option(
    "--history",
    is_flag=True,
    help="Replay the events since --since (changes, activities, purchases) in order, "
    "instead of each contact's current state.",
)
@click.option("--segment", default="", help="With --history: only this segment's members.")
@json_option
@connection_options
@async_command
async def backfill(
    conn: Connection,
    name: str,
    since: datetime | None,
    restart: bool,
    history: bool,
    segment: str,
    as_json: bool,
) -> None:
    """Send every stored contact (or, with --history, the events since a date) to connector
    NAME, showing progress.

    Interrupting it is safe: run it again to continue after the last queued contact or event.
    """
    when = since.replace(tzinfo=UTC) if since is not None else None
    async with conn.client() as sb:
        replies = sb.connectors.backfill(
            name, since=when, restart=restart, history=history, segment=segment
        )
        async for progress in replies:
            if as_json:
                echo_json(progress)
                continue
            events = (
                f"  events {progress.events_total} (skipped {progress.events_skipped})"
                if history
                else ""
            )
            click.echo(
                f"queued {progress.queued}  finished {progress.finished} "
                f"(sent {progress.succeeded}, skipped {progress.skipped}, "
                f"failed {progress.failed})" + events + ("  done" if progress.done else "")
            )
