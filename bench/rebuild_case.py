"""The replay case: RebuildReadModels' rate over a log of real sealed events.

The log is written in-process through the same `event_log.append` the use-cases call (each
contact: a creation, an update and three activities, personal values sealed with its own
key; a tenth of them erased, their key destroyed). Then `RebuildService.rebuild` replays it
and swaps the models in; the case reports events per second of wall time and of this
process's CPU time (the store's reader and writer threads included: one core's work).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.domain.rebuild import RebuildService
from switchboard.server.store import event_values
from switchboard.server.store.base import WriteTx
from switchboard.server.store.event_log import append, append_details
from switchboard.server.store.sqlite.store import SqliteStore, prepare_database
from switchboard.v1 import contacts_pb2

_DAY_US = 86_400_000_000


def _write_log(tx: WriteTx, first: int, count: int, now: int) -> None:
    attrs = Struct()
    attrs.update({"sku": "A-1"})
    for i in range(first, first + count):
        cid = f"c{i:08d}"
        contact = contacts_pb2.Contact(
            id=cid, email=f"r{i}@example.com", country="FR", lists=["news"], version=1
        )
        clear, personal = event_values.contact_changed(contact, ["email", "country"])
        append(
            tx,
            "contact.created",
            cid,
            now,
            contact_id=cid,
            clear=clear,
            personal=personal,
            new_contact=True,
        )
        contact.version = 2
        contact.attributes["plan"] = "pro"
        clear, personal = event_values.contact_changed(contact, ["attributes"])
        append(tx, "contact.updated", cid, now, contact_id=cid, clear=clear, personal=personal)
        for n in range(3):
            clear, personal = event_values.activity_recorded(
                f"a{i:08d}{n}", 1 + n % 2, now - n * _DAY_US, 10.0 + n, attrs
            )
            append(
                tx,
                "lead.activity_recorded",
                cid,
                now,
                contact_id=cid,
                clear=clear,
                personal=personal,
            )
        if i % 10 == 0:
            tx.forget_contact_key(cid)  # type: ignore[attr-defined]  # as an erasure does
            append_details(tx, "contact.erased", cid, now, {"id": cid}, cid)


async def _run(path: Path, contacts: int) -> dict[str, Any]:
    prepare_database(DatabaseSettings(path=str(path)))
    store = SqliteStore(DatabaseSettings(path=str(path)))
    await store.open()
    try:
        now = time.time_ns() // 1000
        for first in range(0, contacts, 5_000):
            size = min(5_000, contacts - first)
            await store.write(lambda tx, f=first, s=size: _write_log(tx, f, s, now), bulk=True)
        wall, cpu = time.perf_counter(), time.process_time()
        messages = [m async for m in RebuildService(store).rebuild(dry_run=False)]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await store.close()
    last = messages[-1]
    if not last.done:
        raise RuntimeError("the rebuild did not finish")
    return {
        "events": last.events_read,
        "contacts": last.contacts,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "events_per_s_wall": round(last.events_read / wall),
        "events_per_s_cpu": round(last.events_read / cpu),
    }


def rebuild_rate(tmp: Path, contacts: int) -> dict[str, Any]:
    """Replay a log of about `contacts` * 5.1 events; see the module docstring."""
    return asyncio.run(_run(tmp / "rebuild.db", contacts))


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        print(rebuild_rate(Path(d), int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
