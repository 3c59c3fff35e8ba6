"""The store contract (`store/base.py`), run against every store: SQLite and PostgreSQL.

Each test states what a use-case may rely on, whichever database holds the data.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import (
    ActivityRow,
    DeadLetter,
    IdempotencyRecord,
    ReadTx,
    RunFilter,
    WriteTx,
)
from switchboard.server.store.select import AnyStore
from switchboard.v1 import campaigns_pb2, contacts_pb2, leads_pb2

ERASED = "(cleared: the contact was erased)"


def _contact(cid: str, email: str, updated_s: int, lists: tuple[str, ...] = ()) -> Any:
    c = contacts_pb2.Contact(id=cid, email=email, lists=list(lists))
    c.updated_at.seconds = updated_s
    return c


def _run(run_id: str, contact_id: str, event: str = "e", created_s: int = 1) -> Any:
    run = campaigns_pb2.Run(id=run_id, event=event, contact_id=contact_id)
    run.created_at.seconds = created_s
    return run


async def test_contacts_by_id_email_and_lists_in_pages(any_store: AnyStore) -> None:
    def put(tx: WriteTx) -> None:
        tx.put_contact(_contact("c1", "a@x.io", 10, ("news", "vip")), created=True)
        tx.put_contact(_contact("c2", "b@x.io", 10, ("news",)), created=True)
        tx.put_contact(_contact("c3", "c@x.io", 20), created=True)

    await any_store.write(put)
    found = await any_store.read(lambda tx: (tx.contact_by_id("c1"), tx.contact_by_email("b@x.io")))
    assert (found[0].email, found[1].id) == ("a@x.io", "c2")  # type: ignore[union-attr]
    assert await any_store.read(lambda tx: tx.contact_by_id("nobody")) is None

    def page(tx: ReadTx, list_name: str, cursor: tuple[int, str] | None) -> list[str]:
        return [c.id for c in tx.list_contacts(list_name, 0, cursor, 2)]

    assert await any_store.read(lambda tx: page(tx, "", None)) == ["c1", "c2"]
    assert await any_store.read(lambda tx: page(tx, "", (10_000_000, "c2"))) == ["c3"]
    assert await any_store.read(lambda tx: page(tx, "news", None)) == ["c1", "c2"]
    # Changing the lists replaces the list index; unchanged lists leave it alone.
    await any_store.write(lambda tx: tx.put_contact(_contact("c1", "a@x.io", 30, ("vip",))))
    assert await any_store.read(lambda tx: page(tx, "news", None)) == ["c2"]
    stale = _contact("c2", "b2@x.io", 40)  # no lists in the message, but lists_changed=False
    await any_store.write(lambda tx: tx.put_contact(stale, lists_changed=False))
    assert await any_store.read(lambda tx: page(tx, "news", None)) == ["c2"]
    assert (await any_store.read(lambda tx: tx.contact_by_email("b2@x.io"))) is not None


async def test_a_failing_write_leaves_nothing_and_raises_its_error(any_store: AnyStore) -> None:
    def fail(tx: WriteTx) -> None:
        tx.state_put("t", "c", "k", {"v": 1})
        raise ValueError("use-case refused")

    with pytest.raises(ValueError, match="use-case refused"):
        await any_store.write(fail)
    assert await any_store.read(lambda tx: tx.state_get("t", "c", "k")) is None


async def test_events_are_append_only_and_ordered(any_store: AnyStore) -> None:
    seqs = await any_store.write(
        lambda tx: [tx.append_event(t, "agg", t.encode(), 1) for t in ("one", "two")]
    )
    assert seqs[1] > seqs[0] > 0
    assert await any_store.read(lambda tx: tx.events("agg")) == [("one", b"one"), ("two", b"two")]


async def test_idempotency_records_and_their_purge(any_store: AnyStore) -> None:
    old = IdempotencyRecord("M", "h1", b"\x00old", contact_id="c1")
    new = IdempotencyRecord("M", "h2", b"new")

    def put(tx: WriteTx) -> None:
        tx.put_idempotency("k-old", old, 100)
        tx.put_idempotency("k-new", new, 900)

    await any_store.write(put)
    got = await any_store.read(lambda tx: tx.idempotency("k-old"))
    assert (got.method, got.request_hash, got.response) == ("M", "h1", b"\x00old")  # type: ignore[union-attr]
    assert await any_store.write(lambda tx: tx.purge_idempotency(500, 10)) == 1
    assert await any_store.read(lambda tx: tx.idempotency("k-old")) is None
    assert await any_store.read(lambda tx: tx.idempotency("k-new")) is not None


async def test_leads_and_activities(any_store: AnyStore) -> None:
    def put(tx: WriteTx) -> None:
        tx.put_lead(leads_pb2.Lead(contact_id="c1", score=5))
        tx.put_lead(leads_pb2.Lead(contact_id="c1", score=7))  # replaces
        for i in range(3):
            tx.add_activity(f"a{i}", "c1", ActivityRow("visit", 100 + i, 1.5), b"")

    await any_store.write(put)
    lead = await any_store.read(lambda tx: tx.lead("c1"))
    assert lead is not None
    assert lead.score == 7
    recent = await any_store.read(lambda tx: tx.recent_activities("c1", 2))
    assert recent == [ActivityRow("visit", 102, 1.5), ActivityRow("visit", 101, 1.5)]
    assert await any_store.read(lambda tx: tx.activity_count("c1")) == 3


async def test_runs_filters_cursor_plan_and_traceparent(any_store: AnyStore) -> None:
    plan = Plan({"k": 1}, ())
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    def put(tx: WriteTx) -> None:
        tx.put_run(_run("r1", "c1", "signup", 1), plan, traceparent=tp)
        tx.put_run(_run("r2", "c2", "signup", 2), plan)
        tx.put_run(_run("r3", "c1", "purchase", 3), plan)
        done = _run("r1", "c1", "signup", 1)
        done.status = campaigns_pb2.RUN_STATUS_SUCCEEDED
        tx.put_run(done)  # no plan: an update of status and record
        tx.update_plan("r2", Plan({"k": 2}, ()))
        tx.enqueue_step("r1", 0, "crm", "r1:0", 0)

    await any_store.write(put)

    def ids(flt: RunFilter, cursor: tuple[int, str] | None = None) -> Any:
        return any_store.read(lambda tx: [r.id for r in tx.list_runs(flt, cursor, 10)])

    assert await ids(RunFilter()) == ["r3", "r2", "r1"]
    assert await ids(RunFilter(contact_id="c1")) == ["r3", "r1"]
    assert await ids(RunFilter(event="signup")) == ["r2", "r1"]
    assert await ids(RunFilter(status=campaigns_pb2.RUN_STATUS_SUCCEEDED)) == ["r1"]
    assert await ids(RunFilter(), (2_000_000, "r2")) == ["r1"]
    assert (await any_store.read(lambda tx: tx.run_plan("r2"))) == Plan({"k": 2}, ())
    item = await any_store.read(lambda tx: tx.outbox_item("r1", 0))
    assert item is not None
    assert (item.traceparent, item.contact_id) == (tp, "c1")


async def test_outbox_retry_finish_and_depth(any_store: AnyStore) -> None:
    def queue(tx: WriteTx) -> None:
        tx.put_run(_run("r1", "c1"), Plan({}, ()))
        tx.enqueue_step("r1", 0, "crm", "r1:0", 0, advance=False)

    await any_store.write(queue)
    [item] = await any_store.write(lambda tx: tx.claim_outbox(10, 20, 5))
    assert (item.attempts, item.advance, item.idempotency_key) == (0, False, "r1:0")
    await any_store.write(lambda tx: tx.retry_outbox(item.id, 1, 50))
    assert await any_store.write(lambda tx: tx.claim_outbox(30, 40, 5)) == []  # not due yet
    [again] = await any_store.write(lambda tx: tx.claim_outbox(60, 70, 5))
    assert again.attempts == 1
    assert await any_store.read(lambda tx: tx.outbox_depth()) == 1
    await any_store.write(lambda tx: tx.finish_outbox(again.id))
    assert await any_store.read(lambda tx: tx.outbox_depth()) == 0


async def test_dead_letters_list_select_replace_and_delete(any_store: AnyStore) -> None:
    def letter(i: int, connector: str, error: str = "boom") -> DeadLetter:
        return DeadLetter(f"d{i}", f"r{i}", 0, connector, "act", "c1", f"r{i}:0", "x", 3, error, 9)

    def put(tx: WriteTx) -> None:
        for i, connector in enumerate(("crm", "esp", "crm")):
            tx.add_dead_letter(letter(i, connector))
        tx.add_dead_letter(letter(2, "crm", "again"))  # the same step: replaced

    await any_store.write(put)
    crm = await any_store.read(lambda tx: tx.list_dead_letters("crm", "", 10))
    assert [(d.id, d.last_error) for d in crm] == [("d0", "boom"), ("d2", "again")]
    assert [d.id for d in await any_store.read(lambda tx: tx.list_dead_letters("", "d0", 10))] == [
        "d1",
        "d2",
    ]
    chosen = await any_store.read(lambda tx: tx.select_dead_letters(["d2", "d1", "dx"], "", 10))
    assert [d.id for d in chosen] == ["d1", "d2"]
    await any_store.write(lambda tx: tx.delete_dead_letter("d1"))
    assert [d.id for d in await any_store.read(lambda tx: tx.select_dead_letters(None, "", 9))] == [
        "d0",
        "d2",
    ]


async def test_waits_by_source_and_key(any_store: AnyStore) -> None:
    def put(tx: WriteTx) -> None:
        tx.add_wait("r2", 1, "ats", "k")
        tx.add_wait("r1", 3, "ats", "k")
        tx.add_wait("r1", 3, "ats", "k")  # the same wait again replaces it
        tx.add_wait("r3", 0, "ats", "other")

    await any_store.write(put)
    assert await any_store.read(lambda tx: tx.waits_for("ats", "k")) == [("r1", 3), ("r2", 1)]
    await any_store.write(lambda tx: tx.delete_wait("r1", 3))
    assert await any_store.read(lambda tx: tx.waits_for("ats", "k")) == [("r2", 1)]


async def test_connector_state_scan_in_key_order_by_prefix(any_store: AnyStore) -> None:
    state = any_store.connector_state("crm")
    for key in ("b:2", "a:1", "b:1", "B:0", "c"):
        await state.put("items", key, {"key": key})
    assert [v["key"] for v in await state.scan("items", "b:")] == ["b:1", "b:2"]
    # Byte order, whatever the database's collation: upper case sorts first.
    assert [v["key"] for v in await state.scan("items")] == ["B:0", "a:1", "b:1", "b:2", "c"]
    assert await state.delete("items", "c") is True
    assert await state.delete("items", "c") is False
    assert await state.transaction(lambda tx: tx.get("items", "a:1")) == {"key": "a:1"}
    assert await any_store.connector_state("esp").get("items", "a:1") is None


async def test_server_key_first_writer_wins(any_store: AnyStore) -> None:
    keys = await asyncio.gather(
        *(any_store.write(lambda tx, i=i: tx.server_key("pages", bytes([i]) * 8)) for i in range(4))
    )
    assert len(set(keys)) == 1
    assert await any_store.write(lambda tx: tx.server_key("pages", b"later")) == keys[0]


async def test_erasure_removes_the_person_everywhere(any_store: AnyStore) -> None:
    email = "gone@x.io"
    run = _run("r1", "c1")
    run.attributes["city"] = "Oslo"
    run.steps.add(connector="crm", error="crm said gone@x.io is bad")

    def put(tx: WriteTx) -> None:
        tx.put_contact(_contact("c1", email, 1, ("news",)), created=True)
        tx.put_lead(leads_pb2.Lead(contact_id="c1", score=1))
        tx.add_activity("a1", "c1", ActivityRow("visit", 1, 1.0), b"")
        tx.put_idempotency("k1", IdempotencyRecord("M", "h", b"x", contact_id="c1"), 1)
        tx.put_idempotency("k2", IdempotencyRecord("M", "h", b"..gone@x.io.."), 1)
        tx.put_idempotency("k3", IdempotencyRecord("M", "h", b"someone else"), 1)
        tx.put_run(run, Plan({"contact": {"id": "c1", "email": email}, "attributes": {"a": 1}}, ()))
        tx.add_wait("r1", 1, "ats", email)
        tx.add_dead_letter(DeadLetter("d1", "r1", 0, "crm", "a", "c1", "k", "x", 1, "bad", 1))
        tx.state_put("crm", "contacts", "c1", {"email": email})
        tx.state_put("esp", "sent", "r1:0", {"to": email})
        tx.state_put("esp", "sent", "r9:0", {"to": "other@x.io"})

    await any_store.write(put)
    await any_store.write(lambda tx: tx.erase_contact("c1", email, "hash-of-email", 5))
    await any_store.forget_old_versions()

    def gather(tx: ReadTx) -> dict[str, Any]:
        return {
            "contact": tx.contact_by_id("c1"),
            "lead": tx.lead("c1"),
            "activities": tx.activity_count("c1"),
            "tombstone": tx.tombstone_by_email_hash("hash-of-email"),
            "tombstone_id": tx.tombstone_by_id("c1"),
            "keys": [k for k in ("k1", "k2", "k3") if tx.idempotency(k) is not None],
            "run": tx.run("r1"),
            "plan": tx.run_plan("r1"),
            "waits": tx.waits_for("ats", email),
            "letters": tx.list_dead_letters("", "", 10),
            "crm": tx.state_get("crm", "contacts", "c1"),
            "sent": [tx.state_get("esp", "sent", k) for k in ("r1:0", "r9:0")],
            "lists": tx.list_contacts("news", 0, None, 10),
        }

    after = await any_store.read(gather)
    assert (after["contact"], after["lead"], after["activities"]) == (None, None, 0)
    assert after["tombstone"].contact_id == "c1"
    assert after["tombstone_id"].deleted_us == 5
    assert after["keys"] == ["k3"]
    assert not after["run"].attributes
    assert after["run"].steps[0].error == ERASED
    assert after["plan"].base["contact"] == {"id": "c1"}
    assert after["plan"].base["attributes"] == {}
    assert after["waits"] == []
    assert after["lists"] == []
    assert [d.last_error for d in after["letters"]] == [ERASED]
    assert after["crm"] is None
    assert after["sent"] == [None, {"to": "other@x.io"}]
