"""`switchboard leads score`."""

from __future__ import annotations

import click

from switchboard.v1 import leads_pb2

from ._common import (
    Connection,
    async_command,
    connection_options,
    echo_json,
    json_option,
    short_enum,
)


@click.group()
def leads() -> None:
    """Score leads."""


@leads.command()
@click.argument("contact", metavar="EMAIL|ID")
@json_option
@connection_options
@async_command
async def score(conn: Connection, contact: str, as_json: bool) -> None:
    """Score the lead of a contact (found by email, or by id) and print the reasons."""
    async with conn.client() as sb:
        if "@" in contact:
            lead = await sb.leads.score(email=contact)
        else:
            lead = await sb.leads.score(id=contact)
    if as_json:
        echo_json(lead)
        return
    grade = short_enum(leads_pb2.LeadGrade.Name(lead.grade)).upper()
    status = short_enum(leads_pb2.LeadStatus.Name(lead.status))
    click.echo(f"{contact}: score {lead.score}, grade {grade}, status {status}")
    for reason in lead.reasons:
        click.echo(f"  {reason.points:+g} {reason.rule}: {reason.description}")
