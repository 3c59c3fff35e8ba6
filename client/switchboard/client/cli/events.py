"""`switchboard events export` and `switchboard contacts data-export`: the log, readable."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from typing import IO, Any

import click

from switchboard.v1 import events_pb2

from ._common import Connection, as_dict, async_command, connection_options, output_option

CSV_COLUMNS = [
    "cursor",
    "type",
    "schema_version",
    "occurred_at",
    "aggregate_id",
    "contact_id",
    "actor",
    "redacted",
    "values",
]


def _when(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 time (`2026-01-31`, `2026-01-31T08:00:00+01:00`); UTC when no zone is given."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time, e.g. 2026-01-31 or 2026-01-31T08:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group()
def events() -> None:
    """Read the event log."""


@events.command("export")
@click.option("--since", callback=_when, help="From this time (ISO 8601); default: the start.")
@click.option("--until", callback=_when, help="Up to this time (ISO 8601); default: now.")
@click.option("--type", "types", multiple=True, help="Only this event type (repeat).")
@click.option("--contact", "contact_id", default="", help="Only events about this contact id.")
@click.option("--after-cursor", type=click.IntRange(min=0), default=0, help="Resume after this.")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@output_option
@click.option(
    "--include-redacted",
    is_flag=True,
    help="Also write erased people's events (only what is not about them).",
)
@click.option("--follow", is_flag=True, help="Keep writing new events as they come (Ctrl-C ends).")
@connection_options
@async_command
async def export_events(
    conn: Connection,
    since: datetime | None,
    until: datetime | None,
    types: tuple[str, ...],
    contact_id: str,
    after_cursor: int,
    fmt: str,
    output: str,
    include_redacted: bool,
    follow: bool,
) -> None:
    """Export events, oldest first, as JSON Lines or CSV (values as a JSON column).

    Ends at the newest event (or at --until) unless --follow is given. Stderr reports the
    count and the last cursor: pass it to --after-cursor to continue later.
    """
    count = skipped = cursor = 0
    with click.open_file(output, "w", encoding="utf-8") as out:
        writer = _writer(out, fmt)
        async with conn.client() as sb:
            replies = sb.events.stream(
                after_cursor=after_cursor,
                since=since,
                until=until,
                types=types,
                contact_id=contact_id,
                stop_at_head=not follow and until is None,
                include_redacted=include_redacted,
            )
            async for reply in replies:
                for event in reply.events:
                    writer(event)
                count += len(reply.events)
                skipped += reply.redacted_skipped
                cursor = reply.cursor
                if follow:
                    out.flush()
    note = f", {skipped} of erased people skipped" if skipped else ""
    click.echo(f"exported {count} events{note}; last cursor {cursor}", err=True)


def _writer(out: IO[str], fmt: str) -> Any:
    if fmt == "jsonl":
        return lambda event: out.write(json.dumps(as_dict(event), sort_keys=True) + "\n")
    table = csv.writer(out)
    table.writerow(CSV_COLUMNS)
    return lambda event: table.writerow(_csv_row(event))


def _csv_row(event: events_pb2.Event) -> list[str]:
    data = as_dict(event)
    which = event.WhichOneof("values")
    values = data.get(which, {}) if which else {}
    actor = event.actor.kind + (f":{event.actor.name}" if event.actor.name else "")
    return [
        str(event.cursor),
        event.type,
        str(event.schema_version),
        data.get("occurred_at", ""),
        event.aggregate_id,
        event.contact_id,
        actor,
        "true" if event.redacted else "false",
        json.dumps(values, sort_keys=True) if values else "",
    ]


@click.command("data-export")
@click.argument("email")
@output_option
@connection_options
@async_command
async def data_export(conn: Connection, email: str, output: str) -> None:
    """Everything held about one person (a GDPR access request), as one JSON document.

    The contact, its lead, its runs and its whole history (changes, activities and
    purchases, step outcomes, consents, offers shown). An erased person is NOT_FOUND.
    Needs the scopes contacts:read, leads:read, campaigns:read and events:read.
    """
    async with conn.client() as sb:
        contact = await sb.contacts.get(email=email)  # NOT_FOUND ends here
        lead = await sb.leads.get(id=contact.id)
        runs = [as_dict(run) async for run in sb.campaigns.iter_runs(contact_id=contact.id)]
        history = [as_dict(event) async for event in sb.events.iter_history(id=contact.id)]
    document = {
        "exported_at": datetime.now(UTC).isoformat(),
        "contact": as_dict(contact),
        "lead": as_dict(lead),
        "runs": runs,
        "history": history,
    }
    with click.open_file(output, "w", encoding="utf-8") as out:
        out.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    click.echo(f"exported contact {contact.id}: {len(runs)} runs, {len(history)} events", err=True)
