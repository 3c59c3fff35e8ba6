"""Sliding windows stay right as days pass with no new event (both stores)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import now_us, set_ts
from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.rules.segment_facts import DAY_US, day_of
from switchboard.server.store.base import ActivityRow, WriteTx
from switchboard.server.store.select import AnyStore
from switchboard.server.store.sqlite.store import SqliteStore
from switchboard.v1 import contacts_pb2


async def test_purchases_leave_each_window_on_their_day(any_store: AnyStore) -> None:
    now = now_us()
    today = day_of(now)
    contact = contacts_pb2.Contact(id=new_id("c"), email="w@example.com", country="FR")
    set_ts(contact.updated_at, now)

    def write(tx: WriteTx) -> None:
        tx.put_contact(contact, created=True)
        tx.add_activity(
            new_id("a"), contact.id, ActivityRow("purchase", now - 29 * DAY_US, 10), b""
        )
        tx.add_activity(new_id("a"), contact.id, ActivityRow("purchase", now - 80 * DAY_US, 5), b"")

    await any_store.write(write)

    async def windows(day: int) -> tuple[int, int, int, float]:
        while await any_store.read(lambda tx: tx.facts_due(day)):
            await any_store.write(lambda tx: tx.roll_facts(day, 1))
        row = await any_store.read(lambda tx: tx.facts_row(contact.id))
        assert row is not None
        return row["purchases_30d"], row["purchases_90d"], row["purchases_365d"], row["amount_90d"]

    assert await windows(today) == (1, 2, 2, 15.0)
    assert not await any_store.read(lambda tx: tx.facts_due(today))
    assert await windows(today + 1) == (0, 2, 2, 15.0)  # the 29-day-old purchase is now 30
    assert await windows(today + 10) == (0, 1, 2, 10.0)
    assert await windows(today + 61) == (0, 0, 2, 0.0)
    assert await windows(today + 284) == (0, 0, 2, 0.0)
    assert await windows(today + 285) == (0, 0, 1, 0.0)  # 80 + 285 = 365 days old
    assert await windows(today + 336) == (0, 0, 0, 0.0)
    count = await any_store.read(lambda tx: tx.segment_count("f.purchases_365d > 0", []))
    assert count == 0


async def test_rows_from_before_the_read_model_are_built_on_first_use(tmp_path: Path) -> None:
    """The migration leaves contacts that existed before it marked unbuilt (expires_day -1);
    the first roll builds them from the contact, its lead and its activities."""
    store = SqliteStore(DatabaseSettings(path=str(tmp_path / "old.db")))
    await store.open()
    now = now_us()
    contact = contacts_pb2.Contact(id=new_id("c"), email="o@example.com", country="DE")
    contact.lists.append("vip")
    set_ts(contact.updated_at, now)

    def write(tx: WriteTx) -> None:
        tx.put_contact(contact, created=True)
        tx.add_activity(new_id("a"), contact.id, ActivityRow("purchase", now - DAY_US, 30), b"")

    try:
        await store.write(write)
        with sqlite3.connect(tmp_path / "old.db") as db:  # as the migration leaves it
            db.execute("DELETE FROM segment_facts")
            db.execute("DELETE FROM activity_days")
            db.execute(
                "INSERT INTO segment_facts (contact_id, expires_day) SELECT id, -1 FROM contacts"
            )
        today = day_of(now)
        assert await store.read(lambda tx: tx.facts_due(today))
        assert await store.write(lambda tx: tx.roll_facts(today, 10)) == 1
        row = await store.read(lambda tx: tx.facts_row(contact.id))
    finally:
        await store.close()
    assert row is not None
    assert (row["country"], row["list_count"], row["purchases_30d"], row["amount_365d"]) == (
        "DE",
        1,
        1,
        30.0,
    )
