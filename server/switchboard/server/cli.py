"""The server's commands of `switchboard`: `serve` and `new-api-key`.

The `switchboard` group itself belongs to the client package (`switchboard.client.cli`);
these commands join it through the `switchboard.cli` entry points in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import click

from switchboard.server.app import StartupError, build_app
from switchboard.server.auth.api_keys import generate_key, hash_key
from switchboard.server.auth.local_key import ensure_local_key, local_key_path
from switchboard.server.config import Settings, SettingsError, load_settings
from switchboard.server.logs import configure_logging
from switchboard.server.runtime import check_protobuf_backend, run_event_loop
from switchboard.server.scopes import ALL_SCOPES
from switchboard.server.security_config import CallerSettings
from switchboard.server.siblings import Siblings
from switchboard.server.workers import notify_ready, supervise

LOCAL_CALLER = "local-dev"


@click.command()
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
@click.option(
    "--local",
    is_flag=True,
    help="Local development: create (or reuse) a key with every scope and print it.",
)
def serve(config_path: Path | None, listen: str | None, workers: int | None, local: bool) -> None:
    """Serve gRPC until SIGTERM or SIGINT, then stop gracefully."""
    try:
        overrides = {"listen": listen} if listen else {}
        settings = load_settings(config_path, **overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    local_key = None
    if local and settings.auth.enabled:
        local_key = ensure_local_key(settings.database.path)
        settings = with_local_caller(settings, local_key)
    configure_logging(settings.log_level, settings.log_format)
    check_protobuf_backend()
    count = workers or os.cpu_count() or 1
    if count == 1:
        try:
            run_event_loop(_serve(settings, None, local_key))
        except StartupError as exc:
            raise click.ClickException(str(exc)) from exc
        return

    def announce(pinned: Settings) -> None:
        _print_auth_notice(pinned, local_key, pinned.listen)
        if pinned.inbound.listen:
            click.echo(
                f"switchboard: inbound webhooks on {_scheme(pinned)}://{pinned.inbound.listen}"
                "/webhooks/<source>",
                err=True,
            )

    sys.exit(supervise(settings, count, _worker, on_ready=announce))


def _worker(settings: Settings, siblings: Siblings | None, index: int) -> None:
    try:
        run_event_loop(_serve(settings, siblings, None))
    except StartupError as exc:
        click.echo(f"switchboard: worker {index}: {exc}", err=True)
        raise SystemExit(2) from exc


async def _serve(settings: Settings, siblings: Siblings | None, local_key: str | None) -> None:
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
        _print_auth_notice(settings, local_key, f"{host}:{app.port}")
        if app.inbound is not None:
            inbound_host = settings.inbound.listen.rpartition(":")[0]
            click.echo(
                f"switchboard: inbound webhooks on {_scheme(settings)}://{inbound_host}:"
                f"{app.inbound.port}"
                "/webhooks/<source>",
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


def _scheme(settings: Settings) -> str:
    return "https" if settings.tls.enabled else "http"


def with_local_caller(settings: Settings, key: str) -> Settings:
    """`settings` plus a `local-dev` caller holding `key` with every scope."""
    caller = CallerSettings(scopes=sorted(ALL_SCOPES), key_sha256=[hash_key(key)])
    callers = {**settings.auth.callers, LOCAL_CALLER: caller}
    auth = settings.auth.model_copy(update={"callers": callers})
    return settings.model_copy(update={"auth": auth})


def _print_auth_notice(settings: Settings, local_key: str | None, address: str) -> None:
    if local_key is not None:
        _print_local_key(local_key, settings.database.path, address)
    elif not settings.auth.enabled:
        click.echo("switchboard: WARNING: authentication is disabled (auth.enabled)", err=True)


def _print_local_key(key: str, database_path: str, address: str) -> None:
    click.echo(
        f"switchboard: local development API key (every scope; stored in "
        f"{local_key_path(database_path)}):\n"
        f"  grpcurl -plaintext -H 'authorization: Bearer {key}' {address} "
        "switchboard.v1.Connectors/ListConnectors",
        err=True,
    )


@click.command("new-api-key")
@click.option("--caller", default="my-service", show_default=True, help="The caller's name.")
@click.option(
    "--scope", "scopes", multiple=True, help="A scope to grant (repeat); default: every scope."
)
def new_api_key(caller: str, scopes: tuple[str, ...]) -> None:
    """Print a new API key and the settings lines that accept it (only its hash is stored)."""
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown:
        raise click.ClickException(f"unknown scopes {unknown}; known: {sorted(ALL_SCOPES)}")
    key = generate_key()
    granted = ", ".join(f'"{s}"' for s in sorted(scopes or ALL_SCOPES))
    click.echo(f"# key (give it to the caller; it is not stored anywhere): {key}")
    click.echo(f"[auth.callers.{caller}]")
    click.echo(f"scopes = [{granted}]")
    click.echo(f'key_sha256 = ["{hash_key(key)}"]')


if __name__ == "__main__":  # pragma: no cover
    # `python -m switchboard.server.cli serve …`: the whole `switchboard` command.
    from switchboard.client.cli import main

    sys.exit(main())
