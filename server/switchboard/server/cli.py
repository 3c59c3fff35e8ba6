"""The server's commands of `switchboard`: `serve`, `new-api-key`, `config` and `db`.

The `switchboard` group itself belongs to the client package (`switchboard.client.cli`);
these commands join it through the `switchboard.cli` entry points in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import click

from switchboard.server.app.build import StartupError, build_app
from switchboard.server.app.roles import worker_address
from switchboard.server.auth.api_keys import generate_key, hash_key
from switchboard.server.auth.local_key import ensure_local_key, local_key_path
from switchboard.server.cache.siblings import Siblings
from switchboard.server.common.scopes import ALL_SCOPES
from switchboard.server.config.sections import LOCAL_CONNECT_LISTEN
from switchboard.server.config.security import CallerSettings
from switchboard.server.config.settings import Settings, SettingsError, load_settings
from switchboard.server.observability.logs import configure_logging
from switchboard.server.process.preflight import check_config, show_config
from switchboard.server.process.runtime import check_protobuf_backend, run_event_loop
from switchboard.server.process.workers import check_roles, notify_ready, supervise
from switchboard.server.store.base import SchemaTooNew
from switchboard.server.store.select import describe as describe_store
from switchboard.server.store.select import prepare_database

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
    "--role",
    type=click.Choice(["all", "api", "dispatch"]),
    default=None,
    help="all: serve and deliver (default); api: serve only (a dispatch process on the same "
    "store delivers); dispatch: deliver only, gRPC health on --listen. See docs/scaling.md.",
)
@click.option(
    "--local",
    is_flag=True,
    help="Local development: create (or reuse) a key with every scope and print it, and "
    f"serve the Connect protocol (on {LOCAL_CONNECT_LISTEN} unless connect.listen is set).",
)
def serve(
    config_path: Path | None,
    listen: str | None,
    workers: int | None,
    role: str | None,
    local: bool,
) -> None:
    """Serve gRPC until SIGTERM or SIGINT, then stop gracefully; SIGHUP reloads the
    per-caller rate limits from the settings."""
    overrides: dict[str, str] = {}
    if listen:
        overrides["listen"] = listen
    if role:
        overrides["role"] = role
    try:
        settings = load_settings(config_path, **overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    local_key = None
    if local and "drain_period_s" not in settings.model_fields_set:
        # Nobody balances load across a development server: Ctrl-C or SIGTERM stops at once.
        settings = settings.model_copy(update={"drain_period_s": 0.0})
    if local and settings.auth.enabled:
        local_key = ensure_local_key(settings.database.path)
        settings = with_local_caller(settings, local_key)
    if local and not settings.connect.listen:
        connect = settings.connect.model_copy(update={"listen": LOCAL_CONNECT_LISTEN})
        settings = settings.model_copy(update={"connect": connect})
    configure_logging(settings.log_level, settings.log_format)
    check_protobuf_backend()
    count = workers or os.cpu_count() or 1
    problem = check_roles(settings, count)
    if problem:
        raise click.ClickException(problem)
    reload = partial(_reload, config_path, overrides)
    if count == 1:
        try:
            run_event_loop(_serve(settings, None, local_key, reload))
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
        if pinned.connect.listen:
            _print_connect(pinned, pinned.connect.listen)
        if pinned.worker_listen and pinned.role != "dispatch":
            serving = count - (pinned.dispatch.processes if pinned.role == "all" else 0)
            addresses = ",".join(worker_address(pinned.worker_listen, i) for i in range(serving))
            click.echo(
                f"switchboard: one port per serving worker, for round_robin clients: "
                f"ipv4:{addresses}",
                err=True,
            )

    sys.exit(supervise(settings, count, partial(_worker, reload), on_ready=announce))


def _reload(config_path: Path | None, overrides: dict[str, str]) -> Settings | None:
    """The settings as they are now (SIGHUP), or None, logged, when they do not load."""
    try:
        return load_settings(config_path, **overrides)
    except SettingsError as exc:
        click.echo(f"switchboard: SIGHUP: settings not reloaded: {exc}", err=True)
        return None


Reload = Callable[[], Settings | None]


def _worker(reload: Reload, settings: Settings, siblings: Siblings | None, index: int) -> None:
    try:
        run_event_loop(_serve(settings, siblings, None, reload))
    except StartupError as exc:
        click.echo(f"switchboard: worker {index}: {exc}", err=True)
        raise SystemExit(2) from exc


async def _serve(
    settings: Settings, siblings: Siblings | None, local_key: str | None, reload: Reload
) -> None:
    app = await build_app(settings, siblings=siblings)
    stop = asyncio.Event()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    def on_hangup() -> None:
        fresh = reload()
        if fresh is not None:
            app.reload(fresh)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    await app.start()
    host = settings.listen.rpartition(":")[0]
    if siblings is None and settings.role == "dispatch":
        click.echo(
            f"switchboard: delivering (role dispatch, store {describe_store(settings.database)}"
            f"); gRPC health on {host}:{app.port}; Ctrl-C stops",
            err=True,
        )
    elif siblings is None:
        click.echo(
            f"switchboard: serving gRPC on {host}:{app.port} "
            f"(store {describe_store(settings.database)}, {len(app.connectors)} connectors); "
            "Ctrl-C stops",
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
        if app.connect is not None:
            connect_host = settings.connect.listen.rpartition(":")[0]
            _print_connect(settings, f"{connect_host}:{app.connect.port}")
    else:
        notify_ready()
    await stop.wait()
    worker = "" if siblings is None else f" worker {siblings.index}"
    # SIGTERM comes from an orchestrator, whose balancers need the drain; SIGINT (Ctrl-C)
    # from a person at a terminal, who does not.
    drain = 0.0 if received[0] == signal.SIGINT else settings.drain_period_s
    click.echo(
        f"switchboard{worker}: stopping (drain {drain:g}s, grace {settings.grace_period_s:g}s)",
        err=True,
    )
    await app.stop(drain_s=drain)
    if siblings is None:
        click.echo("switchboard: stopped", err=True)


def _print_connect(settings: Settings, address: str) -> None:
    click.echo(
        f"switchboard: Connect protocol (JSON over HTTP, docs/connect.md) on "
        f"{_scheme(settings)}://{address}/<service>/<method>",
        err=True,
    )


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


@click.group()
def config() -> None:
    """Show the effective settings, or check a settings file, without starting anything."""


@config.command("show")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SWITCHBOARD_CONFIG",
    help="TOML settings file (env: SWITCHBOARD_CONFIG).",
)
def config_show(config_path: Path | None) -> None:
    """Print the settings `serve` would use, as TOML, with secrets masked."""
    try:
        click.echo(show_config(config_path), nl=False)
    except SettingsError as exc:
        _config_problems(str(config_path or "settings"), exc.problems)


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_check(file: Path) -> None:
    """Check FILE (with the environment, as `serve` would); exit 2 listing every problem."""
    result = check_config(file)
    if result.settings is None or result.problems:
        _config_problems(str(file), result.problems)
    else:
        counts = f"{len(result.settings.connectors)} connectors, {len(result.settings.triggers)}"
        click.echo(f"{file}: OK ({counts} triggers)")


def _config_problems(where: str, problems: list[str]) -> None:
    click.echo(f"{where}: {len(problems)} problem(s)", err=True)
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    raise SystemExit(2)


@click.group()
def db() -> None:
    """The store's schema: bring it up to date before (or instead of) serving."""


@db.command("upgrade")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SWITCHBOARD_CONFIG",
    help="TOML settings file (env: SWITCHBOARD_CONFIG).",
)
def db_upgrade(config_path: Path | None) -> None:
    """Apply pending schema migrations to the configured store, then exit.

    Safe while replicas run or start: migrations take a lock and each applies once.
    """
    try:
        settings = load_settings(config_path)
    except SettingsError as exc:
        _config_problems(str(config_path or "settings"), exc.problems)
    where = describe_store(settings.database)
    try:
        before, after = prepare_database(settings.database)
    except SchemaTooNew as exc:
        raise click.ClickException(f"{where}: {exc}") from exc
    except ValueError as exc:  # a password reference that does not resolve
        raise click.ClickException(f"{where}: database.password: {exc}") from exc
    except Exception as exc:  # unreachable server, refused login, unwritable file
        raise click.ClickException(f"{where}: cannot migrate: {exc}") from exc
    if before == after:
        click.echo(f"{where}: schema is up to date (version {after})")
    else:
        click.echo(f"{where}: schema upgraded from version {before} to {after}")


if __name__ == "__main__":  # pragma: no cover
    # `python -m switchboard.server.cli serve …`: the whole `switchboard` command.
    from switchboard.client.cli import main

    sys.exit(main())
