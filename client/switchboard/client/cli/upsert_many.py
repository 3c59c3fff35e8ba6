"""`switchboard contacts upsert-many`: a file of contacts over one UpsertContacts stream.

Unlike `contacts import` (batches, one summary at the end), every row is an UpsertContact
of its own with its own idempotency key and its own answer: with `--key-prefix`, running
the same file again replays the answers instead of writing twice.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from switchboard.client._contacts import DEFAULT_WINDOW
from switchboard.client._messages import to_contact
from switchboard.v1 import contacts_pb2

from ._common import Connection, Exit, async_command, connection_options
from .rows import ContactMapper, Row, detect_format, parse_mapping, read_rows


@dataclass(slots=True)
class Tally:
    """What the stream answered, by outcome."""

    created: int = 0
    updated: int = 0
    failed: int = 0
    unreadable: int = 0


@click.command("upsert-many")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: by extension.")
@click.option(
    "--map", "mapping", multiple=True, metavar="COLUMN=FIELD", help="As for `contacts import`."
)
@click.option(
    "--key-prefix",
    help="Idempotency key of row N is PREFIX-N, so a re-run replays instead of writing again. "
    "Default: a fresh key per row.",
)
@click.option(
    "--window",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_WINDOW,
    show_default=True,
    help="Rows sent ahead of their answers.",
)
@connection_options
@async_command
async def upsert_many(
    conn: Connection,
    file: Path,
    fmt: str | None,
    mapping: tuple[str, ...],
    key_prefix: str | None,
    window: int,
) -> None:
    """Create or update each contact of FILE (.csv or .jsonl) as its own UpsertContact,
    over one stream; prints one JSON line per rejected row (its record number and reason)
    and a summary. Exit code 3 when any row was rejected."""
    try:
        file_format = detect_format(file, fmt)
        mapper = ContactMapper(parse_mapping(mapping))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    tally = Tally()
    with file.open("rb") as stream:
        rows = read_rows(stream, file_format, mapper)
        numbers: list[int] = []  # record number per item sent, by item index
        requests = _requests(_readable(rows, tally), key_prefix, numbers)
        async with conn.client() as sb:
            async for result in sb.contacts.upsert_many(requests, window=window):
                _count(result, numbers[result.index], tally)
    click.echo(
        f"created {tally.created}, updated {tally.updated}, "
        f"rejected {tally.failed + tally.unreadable}",
        err=True,
    )
    if tally.failed or tally.unreadable:
        raise SystemExit(Exit.PARTIAL)


def _readable(rows: Iterator[Row], tally: Tally) -> Iterator[Row]:
    for row in rows:
        if row.contact is None:
            tally.unreadable += 1
            _reject(row.number, "UNREADABLE", row.error or "unreadable row")
        else:
            yield row


def _requests(
    rows: Iterator[Row], key_prefix: str | None, numbers: list[int]
) -> Iterator[contacts_pb2.UpsertContactRequest]:
    for row in rows:
        assert row.contact is not None  # filtered by `_readable`
        numbers.append(row.number)
        key = f"{key_prefix}-{row.number}" if key_prefix else ""
        yield contacts_pb2.UpsertContactRequest(
            contact=to_contact(row.contact), idempotency_key=key
        )


def _count(answer: contacts_pb2.UpsertContactsResult, number: int, tally: Tally) -> None:
    if answer.HasField("error"):
        tally.failed += 1
        _reject(number, answer.error.code, answer.error.message)
    elif answer.upserted.created:
        tally.created += 1
    else:
        tally.updated += 1


def _reject(number: int, code: str, message: str) -> None:
    sys.stdout.write(json.dumps({"record": number, "code": code, "message": message}) + "\n")
