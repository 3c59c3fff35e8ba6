"""Embedded tools' state: a delivery that lands after its person was erased keeps nothing.

The dispatcher may be calling an embedded tool (the sandbox CRM's upsert) for a person at
the moment they are erased; the erasure deletes the tool's record, and the late call must
not write it back (it would sit on disk with the person's email).
"""

from __future__ import annotations

from switchboard.server.common.ids import new_id
from switchboard.server.store.base import WriteTx
from switchboard.server.store.select import AnyStore
from switchboard.server.store.state import StoreConnectorState
from switchboard.v1 import contacts_pb2


async def test_a_put_about_an_erased_contact_is_dropped(any_store: AnyStore) -> None:
    kept, gone = new_id("c"), new_id("c")

    def create(tx: WriteTx) -> None:
        for cid, email in ((kept, "kept@example.com"), (gone, "gone@example.com")):
            tx.put_contact(contacts_pb2.Contact(id=cid, email=email), created=True)

    await any_store.write(create)
    await any_store.write(lambda tx: tx.erase_contact(gone, "gone@example.com", "h", 1))
    state = StoreConnectorState(any_store, "crm")
    record = {"contact": {"email": "someone"}}
    await state.put("contacts", kept, record)
    await state.put("contacts", gone, record)
    await state.transaction(lambda tx: tx.put("purchases", gone, record))
    # Keys that are not contact ids are stored as before.
    await state.put("sent", "r_1:0", record)

    assert await state.get("contacts", kept) == record
    assert await state.get("contacts", gone) is None
    assert await state.get("purchases", gone) is None
    assert await state.get("sent", "r_1:0") == record
