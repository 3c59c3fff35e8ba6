"""The sealed event envelope on each store: values open, erasure shreds, actor recorded."""

from __future__ import annotations

from switchboard.server.rules.plan import Plan
from switchboard.server.store import event_values
from switchboard.server.store.base import ReadTx, WriteTx
from switchboard.server.store.event_log import (
    EventFilter,
    acting_as,
    append,
    append_details,
    decode_rows,
    held_events,
)
from switchboard.server.store.select import AnyStore
from switchboard.v1 import campaigns_pb2, contacts_pb2, events_pb2


def _contact(cid: str, email: str) -> contacts_pb2.Contact:
    return contacts_pb2.Contact(id=cid, email=email, first_name="Zoe", version=1)


async def _read(store: AnyStore, **flt: str) -> list[events_pb2.Event]:
    def read(tx: ReadTx) -> list[events_pb2.Event]:
        return decode_rows(tx, tx.event_rows(0, 100, EventFilter(**flt))).events  # type: ignore[arg-type]

    return await store.read(read)


async def test_values_seal_open_and_shred(any_store: AnyStore) -> None:
    actor = events_pb2.Actor(kind="api_key", name="shop")

    def write(tx: WriteTx) -> None:
        with acting_as(actor):
            for cid, email in (("c_1", "zoe@example.com"), ("c_2", "max@example.com")):
                tx.put_contact(_contact(cid, email), created=True)
                clear, personal = event_values.contact_changed(_contact(cid, email), ["email"])
                append(
                    tx, "contact.created", cid, 1, contact_id=cid, clear=clear, personal=personal
                )

    await any_store.write(write)
    events = await _read(any_store)
    assert [e.contact_changed.contact.email for e in events] == [
        "zoe@example.com",
        "max@example.com",
    ]
    assert all(e.actor == actor for e in events)
    raw = await any_store.read(lambda tx: tx.event_rows(0, 100, EventFilter()))
    assert all(b"@example.com" not in row.payload for row in raw)  # sealed, not in the clear

    await any_store.write(lambda tx: tx.erase_contact("c_1", "zoe@example.com", "h", 2))
    after = await _read(any_store)
    assert [e.redacted for e in after] == [True, False]
    # What is not about the person stays: the type, id, version and the fields set.
    gone = after[0].contact_changed
    assert (gone.contact.id, gone.contact.version, list(gone.fields)) == ("c_1", 1, ["email"])
    assert (gone.contact.email, gone.contact.first_name) == ("", "")
    assert after[1].contact_changed.contact.email == "max@example.com"


async def test_no_new_key_for_an_erased_contact(any_store: AnyStore) -> None:
    def write(tx: WriteTx) -> None:
        tx.put_contact(_contact("c_9", "gone@example.com"), created=True)
        tx.erase_contact("c_9", "gone@example.com", "h9", 1)
        clear, personal = event_values.run_step("x", 0, "crm", "upsert", 3, 1, error="gone@x")
        append(tx, "run.step", "r_1", 2, contact_id="c_9", clear=clear, personal=personal)

    await any_store.write(write)
    [event] = await _read(any_store, contact_id="c_9")
    assert event.run_step.connector == "crm"
    assert event.run_step.error == ""  # the personal part was dropped, not sealed anew
    assert await any_store.read(lambda tx: tx.contact_keys(["c_9"])) == {}


async def test_log_queries_agree_on_each_store(any_store: AnyStore) -> None:
    def write(tx: WriteTx) -> None:
        for at_us, cid in ((10, "c_a"), (20, "c_b"), (30, "c_a"), (40, "c_a")):
            clear = events_pb2.Event()
            clear.details.update({"n": at_us})
            append(tx, "lead.activity_recorded", cid, at_us, contact_id=cid, clear=clear)

    await any_store.write(write)

    def read(tx: ReadTx) -> dict[str, object]:
        return {
            "seqs": tx.event_seqs(1, 10),
            "head": tx.last_event_seq(),
            "from_25": tx.event_seq_before(25),
            "after_end": tx.event_seq_before(99),
            "history": [r.at_us for r in tx.contact_event_rows("c_a", 0, 10, ())],
            "history_before_4": [r.at_us for r in tx.contact_event_rows("c_a", 4, 10, ())],
            "through_2": [r.seq for r in tx.event_rows(0, 10, EventFilter(), 2)],
            "typed": len(tx.event_rows(0, 10, EventFilter(types=("contact.created",)))),
        }

    assert await any_store.read(read) == {
        "seqs": [2, 3, 4],
        "head": 4,
        "from_25": 2,
        "after_end": 4,
        "history": [40, 30, 10],
        "history_before_4": [30, 10],
        "through_2": [1, 2],
        "typed": 0,
    }


async def test_held_events_are_written_in_order_when_the_block_ends(any_store: AnyStore) -> None:
    # An import part holds its events until its chunk run is chosen: they are written
    # after the block, in the order appended, readable like any other; nothing is written
    # from a block that raised.
    def write(tx: WriteTx) -> int:
        append_details(tx, "before", "agg", 1, {"n": 1})
        with held_events(tx) as chunk_of:
            tx.put_contact(_contact("c_1", "zoe@example.com"), created=True)
            clear, personal = event_values.contact_changed(_contact("c_1", "zoe@example.com"), [])
            append(
                tx, "contact.created", "c_1", 2, contact_id="c_1", clear=clear, personal=personal
            )
            append_details(tx, "run.started", "r_1", 3, {"n": 2})
            held_at = tx.last_event_seq()
            chunk_of["c_1"] = "r_1"
        try:
            with held_events(tx):
                append_details(tx, "never", "agg", 4, {})
                raise RuntimeError("the part failed")
        except RuntimeError:
            pass
        return held_at

    held_at = await any_store.write(write)
    events = await _read(any_store)
    assert [e.type for e in events] == ["before", "contact.created", "run.started"]
    assert held_at == events[0].cursor  # the held events were not in the log yet
    assert events[1].contact_changed.contact.email == "zoe@example.com"


async def test_a_contacts_history_merges_its_events_its_aggregate_and_its_runs(
    any_store: AnyStore,
) -> None:
    """Pages of a contact's history, newest first: events naming the contact, events of
    which it is the aggregate, and events of its runs; the type filter and cursor apply to
    all three."""

    def write(tx: WriteTx) -> None:
        tx.put_run(campaigns_pb2.Run(id="r_1", event="signup", contact_id="c_h"), Plan({}, ()))
        rows = [
            ("contact.updated", "c_h", "c_h"),  # its own
            ("run.started", "r_1", ""),  # of its run, naming no contact
            ("lead.scored", "c_h", ""),  # it is the aggregate
            ("contact.updated", "c_x", "c_x"),  # someone else's
            ("run.step", "r_1", ""),
            ("contact.updated", "c_h", "c_h"),
        ]
        for at_us, (type_, aggregate, contact) in enumerate(rows, start=1):
            clear = events_pb2.Event()
            clear.details.update({"n": at_us})
            append(tx, type_, aggregate, at_us, contact_id=contact, clear=clear)

    await any_store.write(write)

    async def history(before: int, limit: int, types: tuple[str, ...] = ()) -> list[int]:
        rows = await any_store.read(lambda tx: tx.contact_event_rows("c_h", before, limit, types))
        return [r.at_us for r in rows]

    assert await history(0, 10) == [6, 5, 3, 2, 1]
    assert await history(0, 2) == [6, 5]
    assert await history(5, 2) == [3, 2]  # before seq 5
    assert await history(3, 10) == [2, 1]
    assert await history(0, 10, ("run.started", "lead.scored")) == [3, 2]
    assert await history(3, 10, ("run.started", "lead.scored")) == [2]
