"""`switchboard segments create|delete|list|count|export`: segments and their members, streamed."""

from __future__ import annotations

import csv
import json

import click

from ._common import Connection, as_dict, async_command, connection_options, output_option
from .contacts import EXPORT_COLUMNS, csv_row


@click.group()
def segments() -> None:
    """Segments: CEL rules over contacts (see docs/segments.md)."""


@segments.command("create")
@click.argument("name")
@click.argument("expression")
@click.option("--description", default="", help="Free text for people.")
@connection_options
@async_command
async def create_segment(conn: Connection, name: str, expression: str, description: str) -> None:
    """Create segment NAME from a CEL EXPRESSION, e.g. 'purchases_90d > 5 && country == "FR"'."""
    async with conn.client() as sb:
        await sb.segments.create(name, expression, description=description)
    click.echo(f"created segment {name}")


@segments.command("delete")
@click.argument("name")
@connection_options
@async_command
async def delete_segment(conn: Connection, name: str) -> None:
    """Delete segment NAME."""
    async with conn.client() as sb:
        await sb.segments.delete(name)
    click.echo(f"deleted segment {name}")


@segments.command("list")
@connection_options
@async_command
async def list_segments(conn: Connection) -> None:
    """List segments: name, then expression."""
    async with conn.client() as sb:
        for segment in await sb.segments.list():
            click.echo(f"{segment.name}\t{segment.expression}")


@segments.command("count")
@click.argument("name")
@connection_options
@async_command
async def count_segment(conn: Connection, name: str) -> None:
    """Print how many contacts segment NAME holds now."""
    async with conn.client() as sb:
        click.echo(await sb.segments.count(name))


@segments.command("export")
@click.argument("name")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True
)
@output_option
@click.option("--page-size", type=click.IntRange(1, 1000), default=500, show_default=True)
@connection_options
@async_command
async def export_segment(
    conn: Connection, name: str, fmt: str, output: str, page_size: int
) -> None:
    """Export the members of segment NAME page by page, as JSON Lines or CSV.

    The columns are those of `switchboard contacts export`, so the file imports again.
    """
    count = 0
    with click.open_file(output, "w", encoding="utf-8") as out:
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(EXPORT_COLUMNS)
        async with conn.client() as sb:
            async for contact in sb.segments.members(name, page_size=page_size):
                if writer is not None:
                    writer.writerow(csv_row(contact))
                else:
                    out.write(json.dumps(as_dict(contact), sort_keys=True) + "\n")
                count += 1
    click.echo(f"exported {count} contacts", err=True)
