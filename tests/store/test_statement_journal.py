"""The SQLite writer keeps statement journals in memory (issue #15: import CPU per contact).

A statement that fires a trigger (every segment_facts write logs its contact) keeps, inside
a transaction, the first image of each page it changes. On file temp storage SQLite writes
those images to an unlinked temporary file, a write(2) per page: 18 of the 29 µs of a new
contact's facts row. The check looks for that file among the process's open descriptors
while the transaction is still open, which is when it exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from switchboard.server.common.timeutil import now_us
from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.domain.contacts import apply_upsert
from switchboard.server.store.base import WriteTx
from switchboard.server.store.sqlite.store import SqliteStore
from switchboard.v1 import contacts_pb2


def _sqlite_temp_files() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed between the listing and the look
            continue
        if "etilqs_" in target:  # SQLite's prefix for its temporary files
            found.append(target)
    return found


async def test_facts_writes_open_no_temporary_file(tmp_path: Path) -> None:
    store = SqliteStore(DatabaseSettings(path=str(tmp_path / "store.db")))
    await store.open()
    try:

        def work(tx: WriteTx) -> list[str]:
            now = now_us()
            for i in range(20):  # creates: segment_facts rows, each logged by its trigger
                new = contacts_pb2.Contact(email=f"t{i}@example.com", lists=["a"], country="FR")
                apply_upsert(tx, new, now)
            for i in range(20):  # updates of a fact: the facts upsert's UPDATE path
                apply_upsert(tx, contacts_pb2.Contact(email=f"t{i}@example.com", country="DE"), now)
            return _sqlite_temp_files()

        assert await store.write(work) == []
        # The writes happened, and their changes were logged by the triggers.
        bounds = await store.read(lambda tx: tx.facts_log_bounds())
        assert bounds[1] - bounds[0] + 1 == 40
    finally:
        await store.close()
