"""Which store a deployment uses: PostgreSQL when `database.url` is set, else SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from opentelemetry import trace

from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.store.postgres import connect as pg_connect
from switchboard.server.store.postgres import store as pg_store
from switchboard.server.store.postgres.store import PostgresStore
from switchboard.server.store.sqlite import store as sqlite_store
from switchboard.server.store.sqlite.schema import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from switchboard.server.store.sqlite.store import SqliteStore

AnyStore = SqliteStore | PostgresStore


def build_store(settings: DatabaseSettings, tracer: trace.Tracer | None = None) -> AnyStore:
    """The store `settings` name, not yet opened."""
    if settings.url:
        return PostgresStore(settings, tracer)
    return SqliteStore(settings, tracer)


def prepare_database(settings: DatabaseSettings) -> tuple[int, int]:
    """Create or migrate the schema (before workers start, and `switchboard db upgrade`).

    Returns the schema version before and after.
    """
    if settings.url:
        return pg_store.prepare_database(settings)
    before = _sqlite_version(settings.path)
    sqlite_store.prepare_database(settings)
    return before, SQLITE_SCHEMA_VERSION


def _sqlite_version(path: str) -> int:
    if not Path(path).exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def describe(settings: DatabaseSettings) -> str:
    """Where the store is, for log lines (never a password)."""
    return pg_connect.describe(settings) if settings.url else settings.path
