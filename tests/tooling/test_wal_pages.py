"""`bench.wal_pages`'s WAL reader against logs SQLite wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.wal_pages import wal_frames


def test_frames_and_commits_are_read_as_sqlite_counts_them(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    for i in range(1, 6):  # 5 transactions, the later ones over several pages each
        db.execute("BEGIN")
        db.executemany("INSERT INTO t (body) VALUES (?)", [("x" * 500,)] * (i * 20))
        db.execute("COMMIT")
    root = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 't'").fetchone()[0]
    frames = wal_frames((tmp_path / "w.db-wal").read_bytes())
    # A PASSIVE checkpoint reports the log's size in frames without resetting it.
    _, log_frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert len(frames) == log_frames > 10
    assert sum(commit for _, commit in frames) == 6  # the CREATE TABLE and 5 inserts
    assert frames[-1][1]  # a log ends with a commit frame
    assert root in {page for page, _ in frames}


def test_frames_of_an_older_log_generation_are_not_read(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.execute("CREATE TABLE t (body TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [("y" * 800,)] * 200)
    db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # all copied: the next write restarts the log
    db.execute("INSERT INTO t VALUES ('one more')")
    frames = wal_frames((tmp_path / "w.db-wal").read_bytes())
    assert len(frames) == 1  # the new generation's one page...
    assert frames[0][1]  # ...which commits it
    assert wal_frames(b"") == []
