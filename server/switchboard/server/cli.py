"""The `switchboard` command."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import click

from switchboard.server.app import StartupError, build_app
from switchboard.server.commands import register as register_client_commands
from switchboard.server.config import Settings, SettingsError, load_settings
from switchboard.server.runtime import check_protobuf_backend, run_event_loop
from switchboard.server.siblings import Siblings
from switchboard.server.workers import notify_ready, supervise


@click.group()
@click.version_option(package_name="switchboard")
def main() -> None:
    """Switchboard: one gRPC endpoint for contact sync, lead scoring and campaign triggers."""


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SWITCHBOARD_CONFIG",
    help="TOML settings file (env: SWITCHBOARD_CONFIG).",
)
@click.option("--listen", help="host:port to serve on (overrides the settings).")
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=256),
    default=None,
    help="Worker processes sharing the port (default: one per core; 1 serves in-process).",
)
def serve(config_path: Path | None, listen: str | None, workers: int | None) -> None:
    """Serve gRPC until SIGTERM or SIGINT, then stop gracefully."""
    try:
        overrides = {"listen": listen} if listen else {}
        settings = load_settings(config_path, **overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    check_protobuf_backend()
    count = workers or os.cpu_count() or 1
    if count == 1:
        try:
            run_event_loop(_serve(settings, None))
        except StartupError as exc:
            raise click.ClickException(str(exc)) from exc
        return
    sys.exit(supervise(settings, count, _worker))


def _worker(settings: Settings, siblings: Siblings | None, index: int) -> None:
    try:
        run_event_loop(_serve(settings, siblings))
    except StartupError as exc:
        click.echo(f"switchboard: worker {index}: {exc}", err=True)
        raise SystemExit(2) from exc


async def _serve(settings: Settings, siblings: Siblings | None) -> None:
    app = await build_app(settings, siblings=siblings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    host = settings.listen.rpartition(":")[0]
    if siblings is None:
        click.echo(
            f"switchboard: serving gRPC on {host}:{app.port} "
            f"(store {settings.database.path}, {len(app.connectors)} connectors); Ctrl-C stops",
            err=True,
        )
    else:
        notify_ready()
    await stop.wait()
    worker = "" if siblings is None else f" worker {siblings.index}"
    click.echo(f"switchboard{worker}: stopping (grace {settings.grace_period_s:g}s)", err=True)
    await app.stop()
    if siblings is None:
        click.echo("switchboard: stopped", err=True)


# The client commands (contacts, leads, trigger, runs, connectors) live in `commands/`.
register_client_commands(main)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
