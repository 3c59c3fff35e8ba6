"""Point reads may run on the calling thread; other reads always use the reader pool."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.store.sqlite.store import SqliteStore
from switchboard.v1 import contacts_pb2


@pytest.mark.parametrize(
    ("inline", "point", "same_thread"),
    [
        pytest.param(True, True, True, id="point-inline"),
        pytest.param(True, False, False, id="scan-in-pool"),
        pytest.param(False, True, False, id="inline-off"),
    ],
)
async def test_where_reads_run(
    tmp_path: Path, inline: bool, point: bool, same_thread: bool
) -> None:
    settings = DatabaseSettings(path=str(tmp_path / "r.db"), inline_point_reads=inline)
    store = SqliteStore(settings)
    await store.open()
    try:
        contact = contacts_pb2.Contact(id="c_01M847PNZXWYG14T8DV5Y61M89", email="r@example.com")
        await store.write(lambda tx: tx.put_contact(contact))

        def lookup(tx: object) -> tuple[int, str]:
            found = tx.contact_by_email("r@example.com")  # type: ignore[attr-defined]
            return threading.get_ident(), found.id

        ident, found_id = await store.read(lookup, point=point)
        assert found_id == contact.id
        assert (ident == threading.get_ident()) is same_thread
    finally:
        await store.close()
