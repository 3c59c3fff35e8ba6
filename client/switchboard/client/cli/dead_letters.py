"""`switchboard dead-letters list|redrive`."""

from __future__ import annotations

import click

from switchboard.v1 import connectors_pb2

from ._common import (
    CommandError,
    Connection,
    Exit,
    async_command,
    connection_options,
    echo_json,
    json_option,
    short_enum,
)


@click.group("dead-letters")
def dead_letters() -> None:
    """See and replay the steps that delivery gave up on."""


@dead_letters.command("list")
@click.option("--connector", help="Only this connector's dead letters.")
@click.option("--page-size", type=click.IntRange(1, 500), default=100, show_default=True)
@json_option
@connection_options
@async_command
async def list_dead_letters(
    conn: Connection, connector: str | None, page_size: int, as_json: bool
) -> None:
    """List every dead letter, oldest first, page by page."""
    async with conn.client() as sb:
        async for letter in sb.connectors.iter_dead_letters(
            connector=connector, page_size=page_size
        ):
            _echo(letter, as_json)


@dead_letters.command("redrive")
@click.argument("ids", nargs=-1)
@click.option("--connector", help="Redrive every dead letter of this connector.")
@click.option("--all", "everything", is_flag=True, help="Redrive every dead letter.")
@json_option
@connection_options
@async_command
async def redrive(
    conn: Connection, ids: tuple[str, ...], connector: str | None, everything: bool, as_json: bool
) -> None:
    """Queue dead letters for delivery again (same idempotency key, fresh attempts).

    Choose exactly one: IDS, --connector NAME, or --all.
    """
    if sum((bool(ids), connector is not None, everything)) != 1:
        raise CommandError("choose exactly one of IDS, --connector or --all", Exit.USAGE)
    async with conn.client() as sb:
        redriven = await sb.connectors.redrive_dead_letters(
            list(ids) or None, connector=connector, all=everything
        )
    for letter in redriven:
        _echo(letter, as_json)
    if not as_json:
        click.echo(f"redriven: {len(redriven)}", err=True)


def _echo(letter: connectors_pb2.DeadLetter, as_json: bool) -> None:
    if as_json:
        echo_json(letter)
        return
    reason = short_enum(connectors_pb2.DeadLetterReason.Name(letter.reason))
    click.echo(
        f"{letter.id}  {letter.connector}/{letter.action}  run {letter.run_id} step "
        f"{letter.step_index}  {reason}  after {letter.attempts} attempt(s): {letter.last_error}"
    )
