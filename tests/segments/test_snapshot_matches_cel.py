"""The column snapshot counts exactly what CEL selects, before and after further writes.

The same random contacts and expressions as the SQL property test: the snapshot is loaded,
then contacts are changed, added and erased through the store's own writes, and each count
must match CEL over the read-model rows again (the incremental catch-up, not a reload).
"""

from __future__ import annotations

import random

import pytest

from switchboard.server.common.ids import new_id
from switchboard.server.domain.segment_snapshot import FactsSnapshot
from switchboard.server.rules.cel import compile_expression, evaluate_bool
from switchboard.server.rules.segment_expr import parse
from switchboard.server.rules.segment_facts import activation
from switchboard.server.rules.segment_vec import supports
from switchboard.server.store.base import WriteTx
from switchboard.server.store.select import AnyStore
from switchboard.v1 import contacts_pb2, leads_pb2
from tests.segments.test_sql_matches_cel import _contact, _expression

EXPRESSIONS = 120
People = list[tuple[contacts_pb2.Contact, leads_pb2.Lead, list]]  # type: ignore[type-arg]


async def _write(store: AnyStore, people: People, created: bool) -> None:
    def write(tx: WriteTx) -> None:
        for contact, lead, rows in people:
            tx.put_contact(contact, created=created)
            tx.put_lead(lead)
            for row in rows:
                tx.add_activity(new_id("a"), contact.id, row, b"")

    await store.write(write)


async def _check(
    store: AnyStore, snap: FactsSnapshot, live: dict[str, list[str]], rng: random.Random, seed: int
) -> int:
    facts = await store.read(lambda tx: {cid: tx.facts_row(cid) for cid in live})
    views = {cid: activation(facts[cid] or {}, lists) for cid, lists in live.items()}
    checked = 0
    for _ in range(EXPRESSIONS):
        source = _expression(rng)
        tree = parse(source)
        if not supports(tree):
            continue
        program = compile_expression(source)
        want = sum(1 for view in views.values() if evaluate_bool(program, view))
        assert await snap.count(tree) == want, f"seed {seed}: {source} {len(live)}"
        checked += bool(want)
    return checked


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_snapshot_counts_what_cel_selects(any_store: AnyStore, seed: int) -> None:
    rng = random.Random(seed)
    people = [_contact(rng) for _ in range(120)]
    await _write(any_store, people, created=True)
    snap = FactsSnapshot(any_store)
    live = {c.id: list(c.lists) for c, _, _ in people}
    checked = await _check(any_store, snap, live, rng, seed)

    # Change some, add some, erase some: the snapshot catches up from the change log.
    changed: People = []
    for contact, lead, _ in people[:30]:
        contact.country = rng.choice(["FR", "DE", "US", "BR"])
        contact.lists[:] = rng.sample(["vip", "news", "b2b"], rng.randint(0, 3))
        lead.score = rng.randint(0, 100)
        changed.append((contact, lead, []))
        live[contact.id] = list(contact.lists)
    await _write(any_store, changed, created=False)
    added = [_contact(rng) for _ in range(40)]
    await _write(any_store, added, created=True)
    live.update({c.id: list(c.lists) for c, _, _ in added})
    gone = [(c.id, c.email) for c, _, _ in people[30:50]]

    def erase(tx: WriteTx) -> None:
        for cid, email in gone:
            tx.erase_contact(cid, email, "h-" + cid, 1)

    await any_store.write(erase)
    for cid, _ in gone:
        del live[cid]
    checked += await _check(any_store, snap, live, rng, seed)
    assert checked > EXPRESSIONS // 4  # most expressions select someone: the test has teeth
