"""`switchboard contacts import|export|get|upsert-many`: contacts in and out, streamed."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from switchboard.v1 import common_pb2, contacts_pb2

from ._common import (
    Connection,
    Exit,
    as_dict,
    async_command,
    connection_options,
    echo_json,
    json_option,
    output_option,
    run,
)
from .importer import Counts, Totals, import_parts, parts
from .progress import ImportProgress
from .rows import (
    REASON_COLUMNS,
    ContactMapper,
    Format,
    detect_format,
    parse_mapping,
    read_rows,
)
from .upsert_many import upsert_many

#: Batches per import stream: big enough that a stream's setup cost is small, small enough
#: that a part held for a retry stays a few hundred kilobytes.
PART_BATCHES = 10

EXPORT_COLUMNS = (
    "id", "email", "phone", "first_name", "last_name", "company", "job_title", "country",
    "opt_in", "consent_source", "lists", "attributes", "version", "created_at", "updated_at",
)  # fmt: skip


@click.group()
def contacts() -> None:
    """Get, import and export contacts."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: by extension.")
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="Map a column to a contact field, to attributes.KEY, or to `ignore`. Repeatable.",
)
@click.option("--batch-size", type=click.IntRange(1, 1000), default=500, show_default=True)
@click.option(
    "--streams",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="Import streams in flight at once, each on its own connection.",
)
@click.option(
    "--rejected",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where rejected rows go, with the reason. Default: FILE.rejected.EXT beside FILE.",
)
@click.option("--progress/--no-progress", default=None, help="Default: when stderr is a terminal.")
@connection_options
def import_contacts(
    conn: Connection,
    file: Path,
    fmt: str | None,
    mapping: tuple[str, ...],
    batch_size: int,
    streams: int,
    rejected: Path | None,
    progress: bool | None,
) -> None:
    """Import contacts from FILE (.csv with a header row, or .jsonl), streamed in batches.

    Columns map to contact fields by name (opt_in → consent; lists split on `;`);
    other columns become attributes. Rows the server refuses do not stop the import: they
    are written, with the reason, to the rejected file. Exit code 3 when any row was rejected.
    """
    try:
        file_format = detect_format(file, fmt)
        mapper = ContactMapper(parse_mapping(mapping))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    counts = Counts()
    columns: list[str] = []
    show = sys.stderr.isatty() if progress is None else progress
    with (
        file.open("rb") as stream,
        ImportProgress(file.stat().st_size, counts, show=show) as bar,
    ):
        rows = read_rows(_counted(stream, bar.read), file_format, mapper, columns)
        source = parts(rows, batch_size, batch_size * PART_BATCHES, counts)
        totals = run(import_parts(conn, source, streams=streams, on_part=bar.confirmed))
    target = rejected or file.with_suffix(f".rejected{file.suffix or '.' + file_format}")
    written = 0
    if totals.errors or counts.unreadable:
        written = _write_rejected(file, file_format, mapper, totals.errors, target)
    _report(totals, counts, written, target)
    if written or totals.failed:
        raise SystemExit(Exit.PARTIAL)


def _counted(stream: IO[bytes], advance: Callable[[int], None]) -> Iterator[bytes]:
    for line in stream:
        advance(len(line))
        yield line


def _write_rejected(
    file: Path,
    fmt: Format,
    mapper: ContactMapper,
    failed: dict[int, common_pb2.ItemError],
    target: Path,
) -> int:
    """Reads FILE again and writes each rejected row with its reason; returns how many."""
    written = 0
    columns: list[str] = []
    with file.open("rb") as stream, target.open("w", newline="", encoding="utf-8") as out:
        writer: Any = None
        sent = 0
        for row in read_rows(stream, fmt, mapper, columns):
            reason = row.error
            if row.contact is not None:
                error = failed.get(sent)
                sent += 1
                if error is None:
                    continue
                reason = f"{error.code}: {error.message}"
            reason_column = REASON_COLUMNS[fmt]
            if fmt == "csv":
                if writer is None:
                    # A rejected file imported again already has the column: reuse it.
                    header = [*columns] + ([] if reason_column in columns else [reason_column])
                    writer = csv.DictWriter(out, header, extrasaction="ignore")
                    writer.writeheader()
                writer.writerow({**_as_mapping(row.raw), reason_column: reason})
            else:
                raw = row.raw if not isinstance(row.raw, str) else {"_line": row.raw}
                out.write(json.dumps({**raw, reason_column: reason}) + "\n")
            written += 1
    return written


def _as_mapping(raw: Any) -> dict[str, Any]:
    return {key: value for key, value in raw.items() if key is not None}


def _report(totals: Totals, counts: Counts, written: int, target: Path) -> None:
    click.echo(
        f"{totals.received + counts.unreadable} rows read, {totals.received} sent: "
        f"{totals.created} created, {totals.updated} updated, {totals.unchanged} unchanged, "
        f"{totals.failed} rejected by the server, {counts.unreadable} unreadable"
    )
    if totals.retried:
        click.echo(
            f"{totals.retried} part(s) sent again after UNAVAILABLE (rows the first attempt "
            "wrote count as unchanged)",
            err=True,
        )
    if totals.refused:
        click.echo(
            f"the server refused a part {totals.refused} time(s) while busy; each was sent "
            "again after the delay it asked for",
            err=True,
        )
    if written:
        note = " (the server listed only the first errors)" if totals.errors_truncated else ""
        click.echo(f"{written} rejected rows written to {target}{note}")


@contacts.command("get")
@click.argument("contact", metavar="EMAIL|ID")
@json_option
@connection_options
@async_command
async def get_contact(conn: Connection, contact: str, as_json: bool) -> None:
    """Print one contact, found by email or by id."""
    async with conn.client() as sb:
        if "@" in contact:
            found = await sb.contacts.get(email=contact)
        else:
            found = await sb.contacts.get(id=contact)
    if as_json:
        echo_json(found)
        return
    data = as_dict(found)
    for key in ("id", "email", "phone", "first_name", "last_name", "company", "job_title"):
        if key in data:
            click.echo(f"{key}: {data[key]}")
    if "consent" in data:
        consent = data["consent"]
        source = f" ({consent['source']})" if consent.get("source") else ""
        click.echo(f"opt_in: {str(consent.get('opt_in', False)).lower()}{source}")
    if found.lists:
        click.echo(f"lists: {', '.join(found.lists)}")
    for key, value in sorted(found.attributes.items()):
        click.echo(f"attributes.{key}: {value}")
    click.echo(f"version: {found.version}, updated {data.get('updated_at', '')}")


@contacts.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@output_option
@click.option("--list", "list_name", help="Only contacts on this list.")
@click.option("--page-size", type=click.IntRange(1, 1000), default=500, show_default=True)
@connection_options
@async_command
async def export_contacts(
    conn: Connection, fmt: str, output: str, list_name: str | None, page_size: int
) -> None:
    """Export contacts page by page, as CSV (attributes as a JSON column) or JSON Lines.

    Both forms can be imported again with `switchboard contacts import`.
    """
    count = 0
    with click.open_file(output, "w", encoding="utf-8") as out:
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(EXPORT_COLUMNS)
        async with conn.client() as sb:
            async for contact in sb.contacts.iter(list=list_name, page_size=page_size):
                if writer is not None:
                    writer.writerow(csv_row(contact))
                else:
                    out.write(json.dumps(as_dict(contact), sort_keys=True) + "\n")
                count += 1
    click.echo(f"exported {count} contacts", err=True)


def csv_row(contact: contacts_pb2.Contact) -> list[str]:
    """One contact as a row of `EXPORT_COLUMNS`."""
    data = as_dict(contact)
    consent = data.get("consent", {})
    values = {
        **{key: str(value) for key, value in data.items() if isinstance(value, str | int)},
        "opt_in": "" if "consent" not in data else str(consent.get("opt_in", False)).lower(),
        "consent_source": consent.get("source", ""),
        "lists": ";".join(contact.lists),
        "attributes": json.dumps(dict(contact.attributes)) if contact.attributes else "",
    }
    return [values.get(column, "") for column in EXPORT_COLUMNS]


contacts.add_command(upsert_many)
