"""The SQL translation selects exactly the contacts CEL itself selects (the reference).

Random contacts go into a real store through its own writes; random expressions of the
supported subset are both translated to SQL and evaluated by the `cel` library over each
contact's read-model row. Seeded, so a failure names its seed and expression.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import now_us, set_ts
from switchboard.server.rules.cel import compile_expression, evaluate_bool
from switchboard.server.rules.segment_expr import parse
from switchboard.server.rules.segment_facts import activation
from switchboard.server.rules.segment_sql import POSTGRES, SQLITE, to_sql
from switchboard.server.store.base import ActivityRow, WriteTx
from switchboard.server.store.postgres.store import PostgresStore
from switchboard.server.store.select import AnyStore
from switchboard.v1 import contacts_pb2, leads_pb2

DAY_US = 86_400 * 1_000_000
CONTACTS = 150
EXPRESSIONS = 150


def _contact(rng: random.Random) -> tuple[contacts_pb2.Contact, leads_pb2.Lead, list[ActivityRow]]:
    now = now_us()
    contact = contacts_pb2.Contact(
        id=new_id("c"),
        email=f"{new_id('e').lower()}@example.com",
        country=rng.choice(["FR", "DE", "US", ""]),
        lists=rng.sample(["vip", "news", "b2b"], rng.randint(0, 3)),
        attributes={
            k: rng.choice(v)
            for k, v in (("plan", ["pro", "free"]), ("tier", ["1", "2"]))
            if rng.random() < 0.5
        },
    )
    for purpose in ("email_marketing", "analytics"):
        if rng.random() < 0.5:
            contact.consents[purpose].opt_in = rng.random() < 0.7
    set_ts(contact.created_at, now - rng.randint(0, 500) * DAY_US)
    set_ts(contact.updated_at, now)
    lead = leads_pb2.Lead(
        contact_id=contact.id,
        status=rng.choice([leads_pb2.LEAD_STATUS_NEW, leads_pb2.LEAD_STATUS_MQL]),
        score=rng.randint(0, 100),
        grade=rng.choice([leads_pb2.LEAD_GRADE_A, leads_pb2.LEAD_GRADE_B]),
    )
    rows = [
        ActivityRow(
            rng.choice(["purchase", "purchase", "add_to_cart", "page_view"]),
            now - rng.randint(0, 400) * DAY_US - rng.randint(0, DAY_US - 1),
            float(rng.choice([0, 5, 12.5, 40, 99.9])),
        )
        for _ in range(rng.randint(0, 8))
    ]
    return contact, lead, rows


def _atom(rng: random.Random) -> str:
    op = rng.choice(["<", "<=", ">", ">=", "==", "!="])
    w = rng.choice([30, 90, 365])
    stamp = (datetime.now(UTC) - timedelta(days=rng.randint(0, 400))).strftime("%Y-%m-%dT%H:%M:%SZ")
    return rng.choice(
        [
            f"purchases_{w}d {op} {rng.randint(0, 4)}",
            f"amount_{w}d {op} {rng.choice(['0', '12.5', '50.0', '100'])}",
            f'country == "{rng.choice(["FR", "DE", ""])}"',
            'country in ["FR", "US"]',
            f'"{rng.choice(["vip", "news", "none"])}" in lists',
            f"has(attributes.{rng.choice(['plan', 'tier'])})",
            f'attributes.plan {rng.choice(["==", "!="])} "pro"',
            '"tier" in attributes',
            'attributes.plan in ["pro", "none"]',
            f"consent.{rng.choice(['email_marketing', 'analytics', 'advertising'])}",
            f"lead_score {op} {rng.randint(0, 100)}",
            f'lead_grade == "{rng.choice("AB")}"',
            'lead_status != "NEW"',
            "cart_without_order",
            f"size(lists) {op} {rng.randint(0, 3)}",
            f"size(attributes) {op} 1",
            f'last_activity {op} timestamp("{stamp}")',
            f'created_at {op} timestamp("{stamp}")',
            f"average_basket {op} {rng.choice(['10.0', '20', '45.5'])}",
            f"purchases_total {op} {rng.randint(0, 5)}",
        ]
    )


def _expression(rng: random.Random, depth: int = 0) -> str:
    pick = rng.random()
    if depth >= 3 or pick < 0.35:
        return _atom(rng)
    if pick < 0.45:
        return f"!({_expression(rng, depth + 1)})"
    op = "&&" if pick < 0.75 else "||"
    return f"({_expression(rng, depth + 1)} {op} {_expression(rng, depth + 1)})"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_sql_selects_what_cel_selects(any_store: AnyStore, seed: int) -> None:
    rng = random.Random(seed)
    people = [_contact(rng) for _ in range(CONTACTS)]

    def write(tx: WriteTx) -> None:
        for contact, lead, rows in people:
            tx.put_contact(contact, created=True)
            tx.put_lead(lead)
            for row in rows:
                tx.add_activity(new_id("a"), contact.id, row, b"")

    await any_store.write(write)
    dialect = POSTGRES if isinstance(any_store, PostgresStore) else SQLITE
    facts = await any_store.read(lambda tx: {c.id: tx.facts_row(c.id) for c, _, _ in people})
    views = {c.id: activation(facts[c.id] or {}, c.lists) for c, _, _ in people}
    checked = 0
    for _ in range(EXPRESSIONS):
        source = _expression(rng)
        where, params = to_sql(parse(source), dialect)
        got = await any_store.read(
            lambda tx, w=where, p=params: tx.segment_member_ids(w, p, "", 10_000)
        )
        program = compile_expression(source)
        want = sorted(cid for cid, view in views.items() if evaluate_bool(program, view))
        assert got == want, f"seed {seed}: {source}"
        checked += bool(want)
    assert checked > EXPRESSIONS // 4  # most expressions select someone: the test has teeth
