"""The segment read model is written, and its change log appended, only when a write
changed something a segment reads (issue #15: CPU per write)."""

from __future__ import annotations

from typing import Any

from switchboard.server.common.timeutil import now_us
from switchboard.server.domain.contacts import apply_upsert
from switchboard.server.store.base import WriteTx
from switchboard.v1 import contacts_pb2, leads_pb2


async def _upsert(store: Any, **fields: Any) -> str:
    def work(tx: WriteTx) -> str:
        return apply_upsert(tx, contacts_pb2.Contact(**fields), now_us()).contact.id

    return str(await store.write(work))


async def _newest_log_seq(store: Any) -> int:
    return int((await store.read(lambda tx: tx.facts_log_bounds()))[1])


async def _facts(store: Any, contact_id: str) -> dict[str, Any]:
    row = await store.read(lambda tx: tx.facts_row(contact_id))
    assert row is not None
    return dict(row)


async def test_a_write_that_changes_no_fact_leaves_the_facts_and_their_log(
    any_store: Any,
) -> None:
    cid = await _upsert(any_store, email="a@example.com", first_name="Ann", country="FR")
    facts, seq = await _facts(any_store, cid), await _newest_log_seq(any_store)
    assert seq > 0  # the created row was logged

    await _upsert(any_store, email="a@example.com", first_name="Anna", job_title="CTO")

    assert await _newest_log_seq(any_store) == seq
    assert await _facts(any_store, cid) == facts


async def test_a_write_that_changes_a_fact_updates_the_row_and_logs_it(any_store: Any) -> None:
    cid = await _upsert(any_store, email="b@example.com", first_name="Bo", country="FR")
    seq = await _newest_log_seq(any_store)

    await _upsert(any_store, email="b@example.com", country="DE", lists=["vip"])

    assert await _newest_log_seq(any_store) > seq
    facts = await _facts(any_store, cid)
    assert (facts["country"], facts["list_count"]) == ("DE", 1)


async def test_an_update_that_rewrites_the_same_values_is_not_logged(any_store: Any) -> None:
    cid = await _upsert(any_store, email="c@example.com")
    lead = leads_pb2.Lead(contact_id=cid, score=40)
    await any_store.write(lambda tx: tx.put_lead(lead))
    seq = await _newest_log_seq(any_store)

    # The same score again: the UPDATE runs, but no column changed.
    await any_store.write(lambda tx: tx.put_lead(lead))
    assert await _newest_log_seq(any_store) == seq

    changed = leads_pb2.Lead(contact_id=cid, score=41)
    await any_store.write(lambda tx: tx.put_lead(changed))
    assert await _newest_log_seq(any_store) == seq + 1
    assert (await _facts(any_store, cid))["lead_score"] == 41


async def test_a_write_naming_only_a_known_contact_changes_nothing(any_store: Any) -> None:
    cid = await _upsert(any_store, email="d@example.com", first_name="Di")
    events = await any_store.read(lambda tx: tx.last_event_seq())

    def by(**fields: Any) -> Any:
        def work(tx: WriteTx) -> Any:
            return apply_upsert(tx, contacts_pb2.Contact(**fields), now_us())

        return any_store.write(work)

    for same in (by(email="d@example.com"), by(id=cid), by(id=cid, email="d@example.com")):
        out = await same
        assert (out.changed, out.created, out.contact.version) == (False, False, 1)
    assert await any_store.read(lambda tx: tx.last_event_seq()) == events

    # An id with another email is a change of email, not a lookup.
    moved = await by(id=cid, email="e@example.com")
    assert (moved.changed, moved.contact.email, moved.contact.version) == (True, "e@example.com", 2)
