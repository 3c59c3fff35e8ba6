"""Bring a PostgreSQL database's schema up to date, once, however many replicas start at once.

The version lives in a one-row table, `switchboard_schema`. Every migration run takes the
transaction-scoped advisory lock `MIGRATION_LOCK` first and reads the version only then, so
replicas that start together migrate one after the other: the first applies what is
pending, the others find nothing left to do. DDL is transactional in PostgreSQL: a
migration that fails leaves the schema as it was.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

from switchboard.server.store.base import SchemaTooNew
from switchboard.server.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION

# An arbitrary constant, the same in every release: the key of the migration lock.
MIGRATION_LOCK = 0x5357_4244  # "SWBD"

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS switchboard_schema (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    version  integer NOT NULL
)
"""


class SchemaTooOld(RuntimeError):
    """Migrations are pending and this process was told not to apply them."""


def migrate(conn: psycopg.Connection[TupleRow], *, apply: bool = True) -> tuple[int, int]:
    """Apply the pending migrations; return (version before, version after).

    `apply=False` only checks: it raises `SchemaTooOld` when migrations are pending.

    Raises:
        SchemaTooNew: the database was migrated by a newer release (left untouched).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(_VERSION_TABLE)
        row = conn.execute("SELECT version FROM switchboard_schema").fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the database is at schema version {version}, newer than the {SCHEMA_VERSION} "
                "this Switchboard knows: run the newer release (downgrades are not supported)"
            )
        if version < SCHEMA_VERSION and not apply:
            raise SchemaTooOld(
                f"the database is at schema version {version}, older than {SCHEMA_VERSION}: "
                "run `switchboard db upgrade` (or set database.migrate_on_start = true)"
            )
        for script in MIGRATIONS[version:]:
            conn.execute(script.encode())
        conn.execute(
            "INSERT INTO switchboard_schema (version) VALUES (%s) "
            "ON CONFLICT (one) DO UPDATE SET version = excluded.version",
            (SCHEMA_VERSION,),
        )
    return version, SCHEMA_VERSION


def schema_version(conn: psycopg.Connection[TupleRow]) -> int:
    """The database's schema version (0 when it has none yet)."""
    with conn.transaction():
        found = conn.execute("SELECT to_regclass('switchboard_schema')").fetchone()
        if found is None or found[0] is None:
            return 0
        row = conn.execute("SELECT version FROM switchboard_schema").fetchone()
        return 0 if row is None else int(row[0])
