"""Connection strings for the PostgreSQL store: the URL plus a password given by reference."""

from __future__ import annotations

from urllib.parse import urlsplit

from psycopg.conninfo import make_conninfo

from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.config.security import resolve_secret


def conninfo(settings: DatabaseSettings) -> str:
    """The libpq connection string for `settings.url`, with the resolved password.

    Raises:
        ValueError: the password reference does not resolve (naming it, never the secret).
    """
    extra: dict[str, str] = {}
    if settings.password:
        extra["password"] = resolve_secret(settings.password).decode()
    if "application_name" not in settings.url:
        extra["application_name"] = "switchboard"
    return make_conninfo(settings.url, **extra)


def describe(settings: DatabaseSettings) -> str:
    """Where the store is, for log lines: host, port and database, never a password."""
    parts = urlsplit(settings.url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{host}{port}{parts.path}"
