"""Batches go through the connector's shared limits and the consent gate.

One batch call is one vendor call: it takes one ticket (one rate token, one slot, one unit
of the daily quota) from the limits every worker shares, whatever the number of items in
it. Before the call each item passes the consent gate; a refused item ends SKIPPED and is
not sent. A real SQLite store, the real dispatcher and the store-backed shared limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct

from switchboard.server.config.flow import ConnectorSettings, TriggerSettings
from switchboard.server.config.sections import DatabaseSettings, DispatchSettings
from switchboard.server.connectors.base import BatchItem, ItemOutcome
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.dispatch.limits.build import specs_from
from switchboard.server.dispatch.limits.store import StoreLimits
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.runs.start import start_run
from switchboard.server.store.base import WriteTx
from switchboard.server.store.sqlite.store import SqliteStore
from switchboard.v1 import campaigns_pb2, contacts_pb2

StepStatus = campaigns_pb2.StepStatus
ECHO = TriggerSettings.model_validate({"steps": [{"connector": "dest", "action": "echo"}]})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(DatabaseSettings(path=str(tmp_path / "gates.db")))
    await s.open()
    yield s
    await s.close()


async def _enqueue(store: SqliteStore, contacts: Sequence[str]) -> list[str]:
    def work(tx: WriteTx) -> list[str]:
        now = time.time_ns() // 1000
        return [
            start_run(tx, "e", ECHO, contacts_pb2.Contact(id=c), Struct(), now).id for c in contacts
        ]

    return await store.write(work)


async def _runs(store: SqliteStore, ids: Sequence[str]) -> list[campaigns_pb2.Run]:
    found = await store.read(lambda tx: [tx.run(i) for i in ids])
    return [r for r in found if r is not None]


def _dispatcher(
    store: SqliteStore, fake: FakeConnector, **connector: Any
) -> tuple[Dispatcher, StoreLimits]:
    settings = DispatchSettings(poll_interval_s=0.05, batch_linger_ms=20.0)
    configured = {"dest": ConnectorSettings(kind="fake", **connector)}
    limits = StoreLimits(store, specs_from(configured, settings, 0.2), "worker-a", 30.0)
    dispatcher = Dispatcher(
        store, {"dest": fake}, configured, settings, RunNotifier(), limits=limits
    )
    return dispatcher, limits


async def test_a_batch_call_spends_one_unit_of_the_shared_daily_quota(
    store: SqliteStore,
) -> None:
    ids = await _enqueue(store, [f"c{i}" for i in range(150)])
    fake = FakeConnector("dest", {"max_batch": 100}, InMemoryState())
    dispatcher, limits = _dispatcher(store, fake, daily_quota=1)
    dispatcher.start()
    try:
        async with asyncio.timeout(10):
            while not fake.batch_calls:  # noqa: ASYNC110 - the calls are the fake's
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # time for further claims, were any allowed
    finally:
        await dispatcher.stop(grace_s=2.0)
    # The quota of one call let one call of 100 items go, not one item.
    assert [len(keys) for _, keys in fake.batch_calls] == [100]
    assert list(fake.calls) == []
    statuses = [r.steps[0].status for r in await _runs(store, ids)]
    assert statuses.count(StepStatus.STEP_STATUS_SUCCEEDED) == 100
    assert await store.read(lambda tx: tx.outbox_depth()) == 50  # wait for tomorrow's quota
    assert (await limits.budgets()).counts["dest"] == 0


class _Overlap:
    """Wraps the fake's batch calls to see how many run at once."""

    def __init__(self, fake: FakeConnector) -> None:
        self.now = 0
        self.most = 0
        inner = fake.invoke_batch

        async def counted(action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                return await inner(action, items)
            finally:
                self.now -= 1

        fake.invoke_batch = counted  # type: ignore[method-assign]


async def test_a_batch_holds_one_shared_slot_and_frees_it(store: SqliteStore) -> None:
    ids = await _enqueue(store, [f"c{i}" for i in range(250)])
    fake = FakeConnector("dest", {"max_batch": 100, "latency_s": 0.05}, InMemoryState())
    overlap = _Overlap(fake)
    dispatcher, limits = _dispatcher(store, fake, max_concurrency=1)
    dispatcher.start()
    try:
        async with asyncio.timeout(15):
            while await store.read(lambda tx: tx.outbox_depth()):  # noqa: ASYNC110 - rows live in the store
                await asyncio.sleep(0.02)
    finally:
        await dispatcher.stop(grace_s=2.0)
    # One slot: the calls went one after another, 100 items each while there were enough.
    assert overlap.most == 1
    assert [len(keys) for _, keys in fake.batch_calls] == [100, 100, 50]
    runs = await _runs(store, ids)
    assert [r.steps[0].attempts for r in runs] == [1] * 250
    await limits.flush()
    assert (await limits.budgets()).counts["dest"] == 1  # the slot came back


async def test_items_without_consent_are_skipped_and_not_sent(store: SqliteStore) -> None:
    def contacts(tx: WriteTx) -> None:
        for cid, given in (("yes1", True), ("no", False), ("yes2", True)):
            consent = contacts_pb2.Consent(opt_in=given, source="test")
            tx.put_contact(
                contacts_pb2.Contact(id=cid, email=f"{cid}@x.io", consents={"analytics": consent}),
                created=True,
            )

    await store.write(contacts)
    ids = await _enqueue(store, ["yes1", "no", "gone", "yes2"])  # "gone": never stored
    fake = FakeConnector("dest", {"max_batch": 100}, InMemoryState())
    dispatcher, _ = _dispatcher(store, fake, purposes=["analytics"], daily_quota=1)
    dispatcher.start()
    try:
        async with asyncio.timeout(10):
            while await store.read(lambda tx: tx.outbox_depth()):  # noqa: ASYNC110 - rows live in the store
                await asyncio.sleep(0.02)
    finally:
        await dispatcher.stop(grace_s=2.0)
    # One call (within the quota of one) with only the consenting contacts' steps.
    assert [keys for _, keys in fake.batch_calls] == [[f"{ids[0]}:0", f"{ids[3]}:0"]]
    steps = [r.steps[0] for r in await _runs(store, ids)]
    assert [s.status for s in steps] == [
        StepStatus.STEP_STATUS_SUCCEEDED,
        StepStatus.STEP_STATUS_SKIPPED,
        StepStatus.STEP_STATUS_SKIPPED,
        StepStatus.STEP_STATUS_SUCCEEDED,
    ]
    assert [s.attempts for s in steps] == [1, 0, 0, 1]
    assert "no consent for analytics" in steps[1].skip_reason
    assert "erased or unknown" in steps[2].skip_reason
