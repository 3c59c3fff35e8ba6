"""Rules over free-form attributes count the same from the column snapshot as in SQL.

Random contacts with random attributes (keys often missing, unicode values, values that
look like numbers, empty strings) go through the store's own writes; random expressions
built from every operator the subset allows on attributes are counted by the snapshot and
by the SQL translation, which must agree. Then attributes change, contacts are added and
erased, and the snapshot (catching up from the change log) must agree again.
"""

from __future__ import annotations

import random

import pytest

from switchboard.server.common.ids import new_id
from switchboard.server.domain.segment_attributes import AttributeColumns
from switchboard.server.domain.segment_snapshot import FactsSnapshot
from switchboard.server.rules.segment_expr import parse
from switchboard.server.rules.segment_sql import POSTGRES, SQLITE, to_sql
from switchboard.server.rules.segment_vec import attribute_keys, supports
from switchboard.server.store.base import WriteTx
from switchboard.server.store.postgres.store import PostgresStore
from switchboard.server.store.select import AnyStore
from switchboard.v1 import contacts_pb2

KEYS = ("plan", "tier", "city", "score")
VALUES = ("pro", "free", "", "1", "10", "9.5", "-3", "Zürich", "zürich", "東京", "é", "a b", "Pro")
EXPRESSIONS = 150


def _contact(rng: random.Random) -> contacts_pb2.Contact:
    return contacts_pb2.Contact(
        id=new_id("c"),
        email=f"{new_id('e').lower()}@example.com",
        country=rng.choice(["FR", "pro", "", "東京"]),
        attributes={k: rng.choice(VALUES) for k in KEYS if rng.random() < 0.6},
    )


def _lit(rng: random.Random) -> str:
    return '"' + rng.choice(VALUES) + '"'


def _atom(rng: random.Random) -> str:
    op = rng.choice(["<", "<=", ">", ">=", "==", "!="])
    key, other = rng.choice(KEYS), rng.choice(KEYS)
    return rng.choice(
        [
            f"attributes.{key} {op} {_lit(rng)}",
            f"{_lit(rng)} {op} attributes.{key}",
            f"attributes.{key} {op} attributes.{other}",
            f"attributes.{key} {op} country",
            f"attributes.{key} in [{', '.join(_lit(rng) for _ in range(rng.randint(0, 3)))}]",
            f"has(attributes.{key})",
            f'"{rng.choice([*KEYS, "nope"])}" in attributes',
            f"(attributes.{key} == {_lit(rng)}) == {rng.choice(['true', 'false'])}",
            f"(attributes.{key} {op} {_lit(rng)}) != (attributes.{other} == {_lit(rng)})",
            f"size(attributes) {op} {rng.randint(0, 4)}",
            f'country == "{rng.choice(["FR", ""])}"',
        ]
    )


def _expression(rng: random.Random, depth: int = 0) -> str:
    pick = rng.random()
    if depth >= 3 or pick < 0.35:
        return _atom(rng)
    if pick < 0.5:
        return f"!({_expression(rng, depth + 1)})"
    op = "&&" if pick < 0.75 else "||"
    return f"({_expression(rng, depth + 1)} {op} {_expression(rng, depth + 1)})"


async def _put(store: AnyStore, contacts: list[contacts_pb2.Contact], created: bool) -> None:
    def write(tx: WriteTx) -> None:
        for contact in contacts:
            tx.put_contact(contact, created=created)

    await store.write(write)


async def _agree(store: AnyStore, snap: FactsSnapshot, rng: random.Random, seed: int) -> int:
    dialect = POSTGRES if isinstance(store, PostgresStore) else SQLITE
    nonzero = 0
    for _ in range(EXPRESSIONS):
        source = _expression(rng)
        tree = parse(source)
        assert supports(tree), source  # every generated shape is served by the snapshot
        where, params = to_sql(tree, dialect)
        want = await store.read(lambda tx, w=where, p=params: tx.segment_count(w, p))
        got = await snap.count(tree)
        assert got == want, f"seed {seed}: {source}"
        nonzero += bool(want)
        # The member pages too: all of them, then from a cursor in the middle.
        sql_ids = await store.read(
            lambda tx, w=where, p=params: tx.segment_member_ids(w, p, "", 10_000)
        )
        assert await snap.member_ids(tree, "", 10_000) == sql_ids, f"seed {seed}: {source}"
        if sql_ids:
            after = sql_ids[len(sql_ids) // 2]
            page = await snap.member_ids(tree, after, 5)
            assert page == [c for c in sql_ids if c > after][:5], f"seed {seed}: {source}"
    return nonzero


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_attribute_rules_count_as_sql_does(any_store: AnyStore, seed: int) -> None:
    rng = random.Random(seed)
    people = [_contact(rng) for _ in range(150)]
    await _put(any_store, people, created=True)
    snap = FactsSnapshot(any_store)
    nonzero = await _agree(any_store, snap, rng, seed)

    for contact in people[:40]:  # change, drop and add keys
        contact.attributes.clear()
        contact.attributes.update({k: rng.choice(VALUES) for k in KEYS if rng.random() < 0.5})
    await _put(any_store, people[:40], created=False)
    added = [_contact(rng) for _ in range(30)]
    for i, contact in enumerate(added[:10]):  # ids below the loaded ones: out of slot order
        contact.id = f"a{i:03d}"
    await _put(any_store, added, created=True)
    gone = people[40:70]

    def erase(tx: WriteTx) -> None:
        for c in gone:
            tx.erase_contact(c.id, c.email, "h-" + c.id, 1)

    await any_store.write(erase)
    nonzero += await _agree(any_store, snap, rng, seed)
    assert nonzero > EXPRESSIONS // 2  # most expressions select someone: the test has teeth


async def test_erased_contacts_are_not_counted(any_store: AnyStore) -> None:
    people = [
        contacts_pb2.Contact(id=new_id("c"), email=f"p{i}@example.com", attributes={"plan": "pro"})
        for i in range(5)
    ]
    await _put(any_store, people, created=True)
    snap = FactsSnapshot(any_store)
    tree = parse('attributes.plan == "pro"')
    assert await snap.count(tree) == 5

    def erase(tx: WriteTx) -> None:
        tx.erase_contact(people[0].id, people[0].email, "h", 1)

    await any_store.write(erase)
    assert await snap.count(tree) == 4
    assert await snap.count(parse("has(attributes.plan)")) == 4


def test_keys_a_json_path_may_spell_differently_stay_in_sql() -> None:
    assert supports(parse('"plan" in attributes'))
    assert not supports(parse('"a\\"b" in attributes'))
    assert not supports(parse('"é" in attributes'))
    assert not supports(parse("country in attributes"))  # a computed key
    assert attribute_keys(parse("attributes.a == attributes.b || has(attributes.c)")) == {
        "a",
        "b",
        "c",
    }


async def test_key_bound_evicts_the_least_recently_used(any_store: AnyStore) -> None:
    people = [
        contacts_pb2.Contact(
            id=new_id("c"), email=f"k{i}@example.com", attributes={"a": "1", "b": "2", "c": "3"}
        )
        for i in range(4)
    ]
    await _put(any_store, people, created=True)
    held = AttributeColumns(max_keys=2)
    snap = FactsSnapshot(any_store, attributes=held)
    assert await snap.count(parse('attributes.a == "1"')) == 4
    assert await snap.count(parse('attributes.b == "2"')) == 4
    assert await snap.count(parse('attributes.c == "3"')) == 4
    assert held.keys == {"b", "c"}  # "a" was used longest ago
    # More keys in one rule than the bound: the caller counts in SQL.
    three = parse("has(attributes.a) && has(attributes.b) && has(attributes.c)")
    assert await snap.count(three) is None


async def test_keys_with_too_many_values_are_counted_in_sql(any_store: AnyStore) -> None:
    people = [
        contacts_pb2.Contact(id=new_id("c"), email=f"w{i}@example.com", attributes={"ref": str(i)})
        for i in range(6)
    ]
    await _put(any_store, people, created=True)
    held = AttributeColumns(max_values=5)
    snap = FactsSnapshot(any_store, attributes=held)
    assert await snap.count(parse('attributes.ref == "1"')) is None
    assert held.keys == set()
    assert held.refused({"ref"})
