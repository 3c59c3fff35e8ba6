"""Schema migration is safe when several processes open a new database at once."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from switchboard.server.runs.waits import correlation_key
from switchboard.server.store.sqlite.schema import MIGRATIONS, REKEY_WAITS
from switchboard.server.store.sqlite.store import SchemaTooNew, connect, migrate
from switchboard.server.store.sqlite.tx import SqliteTx


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


def test_rows_queued_before_the_trace_columns_still_deliver(tmp_path: Path) -> None:
    db = connect(str(tmp_path / "old.db"), 10_000)
    try:
        for number, script in enumerate(MIGRATIONS[:4], start=1):  # a version-4 database
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute(
            "INSERT INTO runs (id, event, contact_id, status, created_us, data, plan) "
            "VALUES ('r1', 'e', 'c1', 1, 0, x'', '{\"base\": {}, \"steps\": []}')"
        )
        db.execute(
            "INSERT INTO outbox (run_id, step_index, connector, idempotency_key, available_us) "
            "VALUES ('r1', 0, 'crm', 'r1:0', 0)"
        )
        migrate(db)
        items = SqliteTx(db).claim_outbox(now_us=1, lease_until_us=2, limit=10)
        # No trace context was kept then: the delivery starts a trace of its own.
        assert [(i.run_id, i.traceparent) for i in items] == [("r1", "")]
    finally:
        db.close()


def test_a_database_from_a_newer_release_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = str(tmp_path / "newer.db")
    _migrate(path)
    newer = len(MIGRATIONS) + 1
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {newer}")
    db.close()
    db = connect(path, 10_000)
    try:
        with pytest.raises(SchemaTooNew, match=f"schema version {newer}, newer than"):
            migrate(db)
        assert db.execute("PRAGMA user_version").fetchone()[0] == newer
    finally:
        db.close()
def _plan(key_path: str, attributes: dict[str, object]) -> str:
    wait = {"source": "ats", "key": key_path}
    steps = [{"connector": "fake"}, {"wait": wait}]
    return json.dumps({"base": {"attributes": attributes}, "steps": steps})


@pytest.mark.parametrize(
    ("key_path", "value", "legacy", "expected"),
    [
        pytest.param("attributes.id", 4711, "4711.0", "4711", id="integral-double"),
        pytest.param("attributes.id", -3.0, "-3.0", "-3", id="negative"),
        pytest.param("attributes.id", 47.5, "47.5", "47.5", id="fraction-unchanged"),
        pytest.param("attributes.id", True, "True", "true", id="true"),
        pytest.param("attributes.id", False, "False", "false", id="false"),
        pytest.param("attributes.id", "4711.0", "4711.0", "4711.0", id="text-unchanged"),
        pytest.param("attributes.id", 2.0**60, "1.152921504606847e+18", None, id="inexact"),
        pytest.param("attributes.id", {"a": 1}, "{'a': 1}", None, id="object"),
        pytest.param("attributes.x[0]", 4711, "4711.0", "4711.0", id="odd-path-left-alone"),
    ],
)
def test_waiting_rows_are_rekeyed_like_correlation_key(
    tmp_path: Path, key_path: str, value: object, legacy: str, expected: str | None
) -> None:
    path = str(tmp_path / "old.db")
    db = connect(path, 1000)
    for script in MIGRATIONS[: MIGRATIONS.index(REKEY_WAITS)]:
        db.executescript(script)
    db.execute(f"PRAGMA user_version = {MIGRATIONS.index(REKEY_WAITS)}")
    attributes = {key_path.removeprefix("attributes."): value}
    db.execute(
        "INSERT INTO runs (id, event, contact_id, status, created_us, data, plan) "
        "VALUES ('r1', 'e', 'c1', 1, 0, x'', ?)",
        (_plan(key_path, attributes),),
    )
    db.execute("INSERT INTO waits VALUES ('r1', 1, 'ats', ?)", (legacy,))
    migrate(db)
    rows = db.execute("SELECT key FROM waits WHERE run_id = 'r1'").fetchall()
    db.close()
    assert rows == ([] if expected is None else [(expected,)])
    if expected is not None and "[" not in key_path:
        assert expected == correlation_key(value)
