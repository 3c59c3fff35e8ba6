"""The soak against the PostgreSQL store: `BENCH_SOAK_STORE=postgres` (see bench/soak.py).

A PostgreSQL server of the soak's own on loopback, started from tests/postgres_server.py
with its durable settings (fsync, synchronous commit and full-page writes on, as a
production server runs; the SQLite store commits with `synchronous = FULL`), and the
figures the soak samples each window read from it instead of an SQLite file.
"""

from __future__ import annotations

from typing import Any

import psutil
import psycopg

from bench.soak import RUN_NOT_FINAL
from tests.postgres_server import PostgresServer, find_postgres


class SoakDatabase:
    """A durable PostgreSQL server and one database on it, for one soak."""

    def __init__(self) -> None:
        bindir, why = find_postgres()
        if bindir is None:
            raise RuntimeError(f"BENCH_SOAK_STORE=postgres needs PostgreSQL: {why}")
        self.server = PostgresServer(bindir, durable=True)
        try:
            self.url = self.server.create_database("soak")
        except BaseException:
            self.server.stop()
            raise

    def figures(self) -> dict[str, Any]:
        """What each window reports of the database: its size, outbox depth, unfinished runs."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_database_size(current_database()), (SELECT count(*) FROM outbox), "
                "(SELECT count(*) FROM runs WHERE status = ANY(%s))",
                (list(RUN_NOT_FINAL),),
            ).fetchone()
        assert row is not None  # scalar subqueries always give one row
        size, outbox, not_final = row
        return {
            "db_mb": round(size / 2**20, 2),
            "wal_mb": 0.0,  # PostgreSQL's WAL is the server's, recycled by its checkpoints
            "outbox": outbox,
            "runs_not_final": not_final,
        }

    def tables(self, top: int = 15) -> dict[str, float]:
        """The largest tables with their indexes (MB) at the end of the run."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT relname, pg_total_relation_size(relid) AS size "
                "FROM pg_statio_user_tables ORDER BY size DESC LIMIT %s",
                (top,),
            ).fetchall()
        return {name: round(size / 2**20, 1) for name, size in rows}

    def conflicts(self) -> dict[str, int]:
        """Transactions committed and rolled back (re-runs of conflicting writes among them)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit, xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()"
            ).fetchone()
        assert row is not None
        return {"committed": int(row[0]), "rolled_back": int(row[1])}

    def cpu_s(self) -> float:
        """CPU seconds used so far by the PostgreSQL server and its backends."""
        root = psutil.Process(self.server.proc.pid)
        procs = [root, *root.children(recursive=True)]
        total = 0.0
        for proc in procs:
            try:
                total += sum(proc.cpu_times()[:2])
            except psutil.NoSuchProcess:  # a backend that ended meanwhile
                continue
        return total

    def stop(self) -> None:
        """Stop the server this soak started (by its process id) and remove its files."""
        self.server.stop()
