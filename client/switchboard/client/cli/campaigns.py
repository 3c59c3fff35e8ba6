"""`switchboard trigger`, `switchboard runs watch|list` and `switchboard triggers list`."""

from __future__ import annotations

import json
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import click

from switchboard.v1 import campaigns_pb2

from ._common import (
    Connection,
    Exit,
    async_command,
    connection_options,
    echo_json,
    json_option,
    short_enum,
)

_ENDED = {campaigns_pb2.RUN_STATUS_SUCCEEDED, campaigns_pb2.RUN_STATUS_FAILED}


@click.command()
@click.argument("event")
@click.option("--contact", "email", required=True, metavar="EMAIL", help="The contact's email.")
@click.option(
    "--attr",
    "attributes",
    multiple=True,
    metavar="KEY=VALUE",
    help="Event data passed to every step; VALUE is read as JSON when it parses "
    "(amount=19.9 is a number), else as text. Repeatable.",
)
@click.option("--wait", is_flag=True, help="Wait (within --timeout) for the run to end.")
@json_option
@connection_options
@async_command
async def trigger(
    conn: Connection, event: str, email: str, attributes: tuple[str, ...], wait: bool, as_json: bool
) -> None:
    """Start the run configured for EVENT (e.g. newsletter.signup) for a contact.

    Prints the run id and status. With --wait, exit code 5 when the run ends but fails.
    """
    data = dict(_pair(item) for item in attributes)
    async with conn.client() as sb:
        run = await sb.campaigns.trigger(event, email=email, attributes=data or None, wait=wait)
    _show(run, as_json)
    if wait and run.status != campaigns_pb2.RUN_STATUS_SUCCEEDED:
        raise SystemExit(Exit.RUN_FAILED)


@click.group()
def runs() -> None:
    """Follow campaign runs."""


@runs.command()
@click.argument("run_id")
@json_option
@connection_options
@async_command
async def watch(conn: Connection, run_id: str, as_json: bool) -> None:
    """Print RUN_ID's state, then every change, until the run ends.

    Exit code 0 when it succeeds, 5 when it fails.
    """
    run = campaigns_pb2.Run()
    async with conn.client() as sb:
        async for run in sb.campaigns.watch(run_id):
            _show(run, as_json)
    if run.status not in _ENDED:
        raise click.ClickException("the stream ended before the run did")
    if run.status != campaigns_pb2.RUN_STATUS_SUCCEEDED:
        raise SystemExit(Exit.RUN_FAILED)


@runs.command("list")
@click.option("--contact", help="Only runs of this contact (email or id).")
@click.option("--event", help="Only runs of this event.")
@click.option(
    "--status",
    type=click.Choice(["pending", "running", "succeeded", "failed"]),
    help="Only runs in this state.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many."
)
@json_option
@connection_options
@async_command
async def list_runs(
    conn: Connection,
    contact: str | None,
    event: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first, with their steps."""
    async with conn.client() as sb:
        contact_id = contact
        if contact is not None and "@" in contact:
            contact_id = (await sb.contacts.get(email=contact)).id
        found = sb.campaigns.iter_runs(
            contact_id=contact_id, event=event, status=status, page_size=min(limit, 500)
        )
        async with aclosing(found):
            count = 0
            async for run in found:
                _show(run, as_json)
                count += 1
                if count == limit:
                    break


@click.group()
def triggers() -> None:
    """See the configured triggers."""


@triggers.command("list")
@click.argument("event", required=False)
@json_option
@connection_options
@async_command
async def list_triggers(conn: Connection, event: str | None, as_json: bool) -> None:
    """List the configured triggers (or EVENT's) with their steps in order."""
    async with conn.client() as sb:
        found = await sb.campaigns.list_triggers(event)
    for trigger in found:
        if as_json:
            echo_json(trigger)
            continue
        about = f"  {trigger.description}" if trigger.description else ""
        variants = f"  (variants: {', '.join(trigger.variants)})" if trigger.variants else ""
        click.echo(f"{trigger.event}{about}{variants}")
        for step in trigger.steps:
            if step.wait_source:
                branches = ", ".join(step.wait_branches)
                click.echo(f"  {step.index} wait for {step.wait_source} ({branches})")
                continue
            fallback = f"  (fallback: {step.fallback})" if step.fallback else ""
            when = f"  when {step.when}" if step.when else ""
            click.echo(f"  {step.index} {step.connector} {step.action}{fallback}{when}")


@triggers.command()
@click.argument("event")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Runs started at or after this date (UTC).",
)
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Runs started before this date (UTC).",
)
@click.option("--conversion", default="", help="Activity type counted (default: configured).")
@json_option
@connection_options
@async_command
async def variants(
    conn: Connection,
    event: str,
    since: datetime | None,
    until: datetime | None,
    conversion: str,
    as_json: bool,
) -> None:
    """Show EVENT's A/B variants: contacts exposed, conversions and conversion rate."""
    async with conn.client() as sb:
        reply = await sb.campaigns.variant_results(
            event,
            start_time=since.replace(tzinfo=UTC) if since else None,
            end_time=until.replace(tzinfo=UTC) if until else None,
            conversion_type=conversion,
        )
    if as_json:
        echo_json(reply)
        return
    click.echo(f"conversion: {reply.conversion_type}")
    for r in reply.results:
        click.echo(
            f"{r.variant:<16} weight {r.weight:<6} exposed {r.exposures:<8} "
            f"converted {r.conversions:<8} {r.conversion_rate:.1%}"
        )


def _show(run: campaigns_pb2.Run, as_json: bool) -> None:
    if as_json:
        echo_json(run)
        return
    status = short_enum(campaigns_pb2.RunStatus.Name(run.status))
    click.echo(f"run {run.id} {run.event} {status}")
    for step in run.steps:
        why = step.error or step.skip_reason
        detail = f" ({why})" if why else ""
        click.echo(
            f"  {step.index} {step.connector} {step.action}: "
            f"{short_enum(campaigns_pb2.StepStatus.Name(step.status))}{detail}"
        )


def _pair(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--attr")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
