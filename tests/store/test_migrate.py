"""Schema migration is safe when several processes open a new database at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from switchboard.server.store.sqlite.schema import MIGRATIONS
from switchboard.server.store.sqlite.store import connect, migrate


def _migrate(path: str) -> None:
    db = connect(path, 10_000)
    try:
        migrate(db)
    finally:
        db.close()


@pytest.mark.parametrize("processes", [pytest.param(4, id="four-processes")])
def test_concurrent_first_opens_migrate_once(tmp_path: Path, processes: int) -> None:
    path = str(tmp_path / "race.db")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_migrate, args=(path,)) for _ in range(processes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * processes
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"contacts", "events", "outbox", "runs", "tombstones"} <= tables
    finally:
        db.close()


def test_migrate_twice_is_a_no_op(tmp_path: Path) -> None:
    path = str(tmp_path / "again.db")
    _migrate(path)
    _migrate(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        db.close()
