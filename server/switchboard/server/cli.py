"""The `switchboard` command."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from switchboard.server.app import StartupError, build_app
from switchboard.server.config import Settings, SettingsError, load_settings


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
def serve(config_path: Path | None, listen: str | None) -> None:
    """Serve gRPC until SIGTERM or SIGINT, then stop gracefully."""
    try:
        overrides = {"listen": listen} if listen else {}
        settings = load_settings(config_path, **overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(_serve(settings))
    except StartupError as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve(settings: Settings) -> None:
    app = await build_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    host = settings.listen.rpartition(":")[0]
    click.echo(
        f"switchboard: serving gRPC on {host}:{app.port} "
        f"(store {settings.database.path}, {len(app.connectors)} connectors); Ctrl-C stops",
        err=True,
    )
    if app.inbound is not None:
        inbound_host = settings.inbound.listen.rpartition(":")[0]
        click.echo(
            f"switchboard: inbound webhooks on http://{inbound_host}:{app.inbound.port}"
            "/webhooks/<source>",
            err=True,
        )
    await stop.wait()
    click.echo(f"switchboard: stopping (grace {settings.grace_period_s:g}s)", err=True)
    await app.stop()
    click.echo("switchboard: stopped", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
