"""CPU of the write transactions alone: `python -m bench.write_tx [rounds]`.

Opens an SQLite store in this process (no gRPC, no dispatcher, no contact sync) holding
1,000 contacts, then times, per item, transactions of 500 items each:

- `create`: `apply_upsert` of a new contact (an ImportContacts row);
- `update`: `apply_upsert` changing a first name (the UpsertContact case of `make bench`);
- `trigger`: `apply_upsert` of an email alone plus `start_run` (TriggerCampaign's write).

CPU time (`time.process_time`, every thread) per item, median over rounds: the cost of the
code in the transaction, which moves little on a loaded machine. To compare two versions,
run it once per checkout (e.g. `PYTHONPATH=/path/to/old/server python -m bench.write_tx`).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from google.protobuf.struct_pb2 import Struct

from bench.targets import BENCH_CONFIG
from switchboard.server.common.timeutil import now_us
from switchboard.server.config.flow import TriggerSettings
from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.config.settings import Settings
from switchboard.server.domain.contacts import apply_upsert
from switchboard.server.runs.start import start_run
from switchboard.server.store.base import WriteTx
from switchboard.server.store.sqlite.store import SqliteStore
from switchboard.v1 import contacts_pb2

ITEMS = 500


def _trigger() -> TriggerSettings:
    import tomllib

    return Settings(**tomllib.loads(BENCH_CONFIG)).triggers["bench.noop"]


def _cases(round_: int, trigger: TriggerSettings) -> dict[str, Callable[[WriteTx], None]]:
    def create(tx: WriteTx) -> None:
        now = now_us()
        for i in range(ITEMS):
            new = contacts_pb2.Contact(
                email=f"n{round_}-{i}@example.com", first_name="Imp", lists=["imported"]
            )
            apply_upsert(tx, new, now)

    def update(tx: WriteTx) -> None:
        now = now_us()
        for i in range(ITEMS):
            changed = contacts_pb2.Contact(email=f"u{i}@example.com", first_name=f"F{round_}-{i}")
            apply_upsert(tx, changed, now)

    def trig(tx: WriteTx) -> None:
        now = now_us()
        for i in range(ITEMS):
            up = apply_upsert(tx, contacts_pb2.Contact(email=f"u{i}@example.com"), now)
            start_run(tx, "bench.noop", trigger, up.contact, Struct(), now)

    return {"create": create, "update": update, "trigger": trig}


async def measure(rounds: int) -> dict[str, float]:
    """{case: median CPU µs per item}."""
    trigger = _trigger()
    with tempfile.TemporaryDirectory(prefix="switchboard-write-tx-") as tmp:
        store = SqliteStore(DatabaseSettings(path=str(Path(tmp) / "tx.db")))
        await store.open()
        try:

            def seed(tx: WriteTx) -> None:
                for i in range(1000):
                    contact = contacts_pb2.Contact(
                        email=f"u{i}@example.com", first_name="S", lists=["newsletter"]
                    )
                    apply_upsert(tx, contact, now_us())

            await store.write(seed)
            per_item: dict[str, list[float]] = {}
            for r in range(rounds):
                for name, work in _cases(r, trigger).items():
                    t0 = time.process_time()
                    await store.write(work)
                    used = time.process_time() - t0
                    per_item.setdefault(name, []).append(used / ITEMS * 1e6)
        finally:
            await store.close()
    return {name: round(statistics.median(v), 1) for name, v in per_item.items()}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    for name, us in asyncio.run(measure(rounds)).items():
        print(f"{name:8} {us:7.1f} us CPU per item")


if __name__ == "__main__":
    main()
