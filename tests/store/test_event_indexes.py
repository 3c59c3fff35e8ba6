"""The event log's indexes (SQLite): a contact's own events are indexed once, by contact,
and every look-up by contact or by aggregate still goes through an index."""

from __future__ import annotations

import sqlite3

import pytest

from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import WriteTx
from switchboard.server.store.event_log import EventFilter
from switchboard.server.store.select import AnyStore
from switchboard.v1 import campaigns_pb2
from tests.store.vm_steps import vm_steps

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def _db(tx: WriteTx) -> sqlite3.Connection:
    return tx._db  # type: ignore[attr-defined, no-any-return]


def _append(tx: WriteTx, aggregate_id: str, contact_id: str, at_us: int) -> None:
    tx.append_sealed("e", aggregate_id, contact_id, b"x", at_us)  # type: ignore[attr-defined]


def _fill(tx: WriteTx, start: int, count: int) -> None:
    """Other people's events: each contact's own, and one of a run of theirs."""
    for i in range(start, start + count):
        _append(tx, f"other-{i}", f"other-{i}", i)
        _append(tx, f"run-of-other-{i}", f"other-{i}", i)


def _mine(tx: WriteTx) -> None:
    _append(tx, "c1", "c1", 1)  # the contact's own event
    _append(tx, "r1", "c1", 2)  # a run of the contact's
    _append(tx, "r1", "", 3)  # the same run's, naming no contact (a legacy row)
    tx.put_run(campaigns_pb2.Run(id="r1", event="e", contact_id="c1"), Plan({}, ()))


def _cost(tx: WriteTx) -> dict[str, int]:
    """SQLite VM instructions (in hundreds) of each look-up, with its answer checked."""
    reads = {
        "by aggregate c1": lambda: len(tx.events("c1")),
        "by aggregate r1": lambda: len(tx.events("r1")),
        "rows of c1": lambda: len(tx.event_rows(0, 100, EventFilter(contact_id="c1"))),
        "history of c1": lambda: len(tx.contact_event_rows("c1", 0, 100, ())),
    }
    expected = {"by aggregate c1": 1, "by aggregate r1": 2, "rows of c1": 2, "history of c1": 3}
    cost: dict[str, int] = {}
    for name, read in reads.items():
        cost[name], answer = vm_steps(tx, read)
        assert answer == expected[name], name
    return cost


async def test_a_contacts_own_events_are_not_indexed_by_aggregate_too(any_store: AnyStore) -> None:
    await any_store.write(lambda tx: _fill(tx, 0, 500))

    def cells(tx: WriteTx) -> dict[str, int]:
        rows = _db(tx).execute(
            # An index b-tree keeps entries on its interior pages as well.
            "SELECT name, sum(ncell) FROM dbstat WHERE name LIKE 'events_%aggregate' GROUP BY name"
        )
        return {name: int(n) for name, n in rows}

    # Only the runs' 500 events, whose aggregate is not their contact.
    assert await any_store.read(cells) == {"events_other_aggregate": 500}


async def test_look_ups_by_contact_or_aggregate_do_not_scan_the_log(any_store: AnyStore) -> None:
    await any_store.write(_mine)
    await any_store.write(lambda tx: _fill(tx, 0, 100))
    small = await any_store.write(_cost)
    await any_store.write(lambda tx: _fill(tx, 100, 3000))
    large = await any_store.write(_cost)
    for name, before in small.items():
        assert large[name] <= before + 2, (name, small, large)
