"""`switchboard admin rebuild-read-models`: operator tasks over the server's database."""

from __future__ import annotations

import sys

import click

from ._common import Connection, async_command, connection_options


@click.group()
def admin() -> None:
    """Operator tasks (the API key needs the `admin` scope)."""


@admin.command("rebuild-read-models")
@click.option("--dry-run", is_flag=True, help="Replay and count, but keep the current models.")
@click.option("--quiet", is_flag=True, help="Print only the summary, no progress lines.")
@connection_options
@async_command
async def rebuild_read_models(conn: Connection, dry_run: bool, quiet: bool) -> None:
    """Replay the event log into fresh read models and swap them in atomically.

    Progress (events read, rate, cursor) goes to standard error; the summary to standard
    output. Interrupting (Ctrl-C) before the end leaves the current models untouched.
    """
    async with conn.client() as sb:
        async for p in sb.admin.rebuild_read_models(dry_run=dry_run):
            if not p.done:
                if not quiet:
                    click.echo(
                        f"read {p.events_read} events ({p.events_per_second:,.0f}/s), "
                        f"cursor {p.cursor}",
                        err=True,
                    )
                continue
            verb = "built (dry run, not swapped)" if dry_run else "rebuilt and swapped in"
            click.echo(
                f"{verb}: {p.events_read} events up to cursor {p.cursor} "
                f"({p.events_per_second:,.0f}/s); {p.contacts} contacts, "
                f"{p.activities} activities, {p.list_memberships} list memberships, "
                f"{p.leads} leads ({p.leads_kept} not in the log, kept as they were); "
                f"{p.legacy_contacts_kept} contacts with schema-1 history kept as they were; "
                f"{p.redacted_events} redacted events"
            )
            sys.stdout.flush()
