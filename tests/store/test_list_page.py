"""ListContacts by list (SQLite): every page in (updated, id) order whatever the list's shape,
and a page's cost bounded by the page, not by the list's or the table's size."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from switchboard.server.store.base import ReadTx, WriteTx
from switchboard.server.store.select import AnyStore
from switchboard.server.store.sqlite import list_page
from switchboard.v1 import contacts_pb2
from tests.store.vm_steps import vm_steps

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def _contact(i: int, updated_us: int, lists: list[str]) -> contacts_pb2.Contact:
    c = contacts_pb2.Contact(id=f"c{i:06d}", email=f"p{i}@x.io", lists=lists)
    c.updated_at.seconds, micros = divmod(updated_us, 1_000_000)
    c.updated_at.nanos = micros * 1000
    return c


def _us(c: contacts_pb2.Contact) -> int:
    return c.updated_at.seconds * 1_000_000 + c.updated_at.nanos // 1000


def _pages(tx: ReadTx, name: str, after_us: int, size: int) -> list[str]:
    """Every page of `name` as ListContacts walks them (its cursor is the last row's key)."""
    ids: list[str] = []
    cursor: tuple[int, str] | None = None
    while True:
        rows = tx.list_contacts(name, after_us, cursor, size + 1)
        ids += [c.id for c in rows[:size]]
        if len(rows) <= size:
            return ids
        last = rows[size - 1]
        cursor = (_us(last), last.id)


async def test_pages_of_every_list_shape_come_in_order(
    any_store: AnyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small walk budget takes every path on a few hundred contacts: sorted at once, walked
    # to a full page, walked to the table's end, and walked then sorted after a sparse stretch.
    monkeypatch.setattr(list_page, "SCAN", 25)
    rng = random.Random(7)
    contacts = []
    for i in range(600):
        lists = [
            name
            for name, share in (("dense", 0.6), ("sparse", 0.1), ("all", 1.0))
            if rng.random() < share
        ]
        updated_us = rng.randrange(50, 400) * 1000  # with ties in time: the id orders them
        if i < 80:
            lists.append("early")  # members only among the oldest contacts
            updated_us = rng.randrange(1, 50) * 1000
        contacts.append(_contact(i, updated_us, lists))

    def put(tx: WriteTx) -> None:
        for c in contacts:
            tx.put_contact(c, created=True)

    await any_store.write(put)
    by_key = sorted(contacts, key=lambda c: (_us(c), c.id))
    checked = 0
    for name in ("dense", "sparse", "early", "all", "none"):
        for after_us in (0, 30_000, 150_000):
            expected = [c.id for c in by_key if name in c.lists and _us(c) >= after_us]
            for size in (1, 7, 50):
                got = await any_store.read(
                    lambda tx, n=name, a=after_us, s=size: _pages(tx, n, a, s)
                )
                assert got == expected, (name, after_us, size)
                checked += len(got)
    assert checked > 3000  # the lists are not empty by accident


async def _cost_of_first_page(any_store: AnyStore, name: str) -> int:
    def read(tx: WriteTx) -> int:
        steps, rows = vm_steps(tx, lambda: tx.list_contacts(name, 0, None, 51))
        assert len(rows) == (51 if name == "news" else 5)
        return steps

    return int(await any_store.write(read))


async def test_a_page_costs_the_same_for_a_list_of_2000_or_20000(any_store: AnyStore) -> None:
    """A large list that holds most contacts is walked, not sorted (it was: 10x the cost);
    a small one is sorted, whatever the table holds."""

    def fill(start: int, count: int) -> Callable[[WriteTx], None]:
        def put(tx: WriteTx) -> None:
            for i in range(start, start + count):
                lists = ["news"] + (["few"] if i < 5 else [])
                tx.put_contact(_contact(i, 1_000_000 + i * 7919 % 100_003, lists), created=True)

        return put

    await any_store.write(fill(0, 2000))
    small = {n: await _cost_of_first_page(any_store, n) for n in ("news", "few")}
    await any_store.write(fill(2000, 18_000))
    large = {n: await _cost_of_first_page(any_store, n) for n in ("news", "few")}
    for name in ("news", "few"):
        assert large[name] <= small[name] * 1.5 + 5, (name, small, large)
