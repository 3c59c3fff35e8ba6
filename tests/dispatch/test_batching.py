"""Batching: due steps of one batch connector and action go out in few calls, each step
keeping its own outcome, attempts, retries, fallback and dead letter.

A real SQLite store and the real dispatcher; the batch-capable fake stands in for the tool.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct

from switchboard.server.config.flow import ConnectorSettings, TriggerSettings
from switchboard.server.config.sections import DatabaseSettings, DispatchSettings
from switchboard.server.connectors.base import BatchItem, ItemOutcome
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from switchboard.server.runs.start import start_run
from switchboard.server.store.base import WriteTx
from switchboard.server.store.sqlite.store import SqliteStore
from switchboard.v1 import campaigns_pb2, contacts_pb2

StepStatus = campaigns_pb2.StepStatus
ECHO = {"steps": [{"connector": "dest", "action": "echo"}]}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(DatabaseSettings(path=str(tmp_path / "batching.db")))
    await s.open()
    yield s
    await s.close()


def _fake(**options: Any) -> FakeConnector:
    return FakeConnector("dest", {"max_batch": 100, **options}, InMemoryState())


async def _enqueue(
    store: SqliteStore, trigger: dict[str, Any], contacts: Sequence[str]
) -> list[str]:
    """Start one run of `trigger` per contact id, in this order; return the run ids."""
    settings = TriggerSettings.model_validate(trigger)

    def work(tx: WriteTx) -> list[str]:
        return [
            start_run(
                tx, "e", settings, contacts_pb2.Contact(id=c), Struct(), time.time_ns() // 1000
            ).id
            for c in contacts
        ]

    return await store.write(work)


class _Running:
    """A started dispatcher over `store` with one connector, `dest`."""

    def __init__(
        self, store: SqliteStore, fake: FakeConnector, linger_ms: float, **connector: Any
    ) -> None:
        settings = DispatchSettings(
            poll_interval_s=0.05, base_backoff_s=0.0, max_backoff_s=0.0, batch_linger_ms=linger_ms
        )
        configured = {"dest": ConnectorSettings(kind="fake", **connector)}
        self.store = store
        self.dispatcher = Dispatcher(store, {"dest": fake}, configured, settings, RunNotifier())

    async def drained(self, timeout_s: float = 15.0) -> None:
        async with asyncio.timeout(timeout_s):
            while await self.store.read(lambda tx: tx.outbox_depth()):  # noqa: ASYNC110 - the rows live in the store
                await asyncio.sleep(0.02)

    async def runs(self, ids: Sequence[str]) -> list[campaigns_pb2.Run]:
        found = await self.store.read(lambda tx: [tx.run(i) for i in ids])
        assert all(r is not None for r in found)
        return [r for r in found if r is not None]


@pytest.fixture
async def running(store: SqliteStore) -> AsyncIterator[Callable[..., _Running]]:
    started: list[_Running] = []

    def start(fake: FakeConnector, linger_ms: float = 20.0, **connector: Any) -> _Running:
        r = _Running(store, fake, linger_ms, **connector)
        r.dispatcher.start()
        started.append(r)
        return r

    yield start
    for r in started:
        await r.dispatcher.stop(grace_s=1.0)


def _statuses(runs: Sequence[campaigns_pb2.Run]) -> list[int]:
    return [r.steps[0].status for r in runs]


@pytest.mark.parametrize("n", [pytest.param(1, id="1"), pytest.param(250, id="250")])
async def test_n_due_steps_make_ceil_n_over_100_calls(
    store: SqliteStore, running: Callable[..., _Running], n: int
) -> None:
    ids = await _enqueue(store, ECHO, [f"c{i}" for i in range(n)])
    fake = _fake()
    r = running(fake)
    await r.drained()
    sizes = sorted(len(keys) for _, keys in fake.batch_calls)
    assert len(sizes) == math.ceil(n / 100)
    assert sum(sizes) == n
    assert max(sizes) <= 100
    assert list(fake.calls) == []  # nothing went out one by one
    sent = {k for _, keys in fake.batch_calls for k in keys}
    assert sent == {f"{i}:0" for i in ids}  # each step's own idempotency key
    runs = await r.runs(ids)
    assert _statuses(runs) == [StepStatus.STEP_STATUS_SUCCEEDED] * n
    assert [run.steps[0].attempts for run in runs] == [1] * n
    assert runs[0].steps[0].result["attempt"] == 1


async def test_a_failed_item_alone_is_retried(
    store: SqliteStore, running: Callable[..., _Running]
) -> None:
    ids = await _enqueue(store, ECHO, [f"c{i}" for i in range(5)])
    fake = _fake()
    fake.fail_item(f"{ids[2]}:0", RetryableConnectorError("item 2: try later"))
    r = running(fake)
    await r.drained()
    calls = [keys for _, keys in fake.batch_calls]
    assert calls == [[f"{i}:0" for i in ids], [f"{ids[2]}:0"]]
    runs = await r.runs(ids)
    assert _statuses(runs) == [StepStatus.STEP_STATUS_SUCCEEDED] * 5
    assert [run.steps[0].attempts for run in runs] == [1, 1, 2, 1, 1]


async def test_a_whole_batch_failure_counts_an_attempt_for_every_item(
    store: SqliteStore, running: Callable[..., _Running]
) -> None:
    ids = await _enqueue(store, ECHO, [f"c{i}" for i in range(4)])
    fake = _fake()
    fake.script_batch("echo", RetryableConnectorError("503 for the request"))
    r = running(fake)
    await r.drained()
    assert [len(keys) for _, keys in fake.batch_calls] == [4, 4]
    runs = await r.runs(ids)
    assert _statuses(runs) == [StepStatus.STEP_STATUS_SUCCEEDED] * 4
    assert [run.steps[0].attempts for run in runs] == [2] * 4


async def test_retries_exhausted_by_whole_batch_failures_dead_letter_every_item(
    store: SqliteStore, running: Callable[..., _Running]
) -> None:
    ids = await _enqueue(store, ECHO, ["a", "b"])
    fake = _fake(fail_times=3)
    r = running(fake, max_attempts=3, breaker_failures=10)
    await r.drained()
    assert len(fake.batch_calls) == 3
    runs = await r.runs(ids)
    assert _statuses(runs) == [StepStatus.STEP_STATUS_FAILED] * 2
    letters = await store.read(lambda tx: tx.list_dead_letters("", "", 10))
    assert sorted((d.run_id, d.reason, d.attempts) for d in letters) == sorted(
        (i, "retries_exhausted", 3) for i in ids
    )


@pytest.mark.parametrize(
    ("fallback", "status"),
    [
        pytest.param(None, StepStatus.STEP_STATUS_FAILED, id="dead-letter"),
        pytest.param({"result": {"default": True}}, StepStatus.STEP_STATUS_FALLBACK, id="fallback"),
    ],
)
async def test_a_permanent_item_error_ends_that_item_only(
    store: SqliteStore,
    running: Callable[..., _Running],
    fallback: dict[str, Any] | None,
    status: int,
) -> None:
    step: dict[str, Any] = {"connector": "dest", "action": "echo"}
    if fallback:
        step["fallback"] = fallback
    ids = await _enqueue(store, {"steps": [step]}, ["a", "b", "c"])
    fake = _fake()
    fake.fail_item(f"{ids[1]}:0", PermanentConnectorError("400 invalid email"))
    r = running(fake)
    await r.drained()
    assert len(fake.batch_calls) == 1
    runs = await r.runs(ids)
    ok = StepStatus.STEP_STATUS_SUCCEEDED
    assert _statuses(runs) == [ok, status, ok]
    assert "400 invalid email" in runs[1].steps[0].error
    letters = await store.read(lambda tx: tx.list_dead_letters("", "", 10))
    if fallback:
        assert letters == []
        assert runs[1].steps[0].result["default"] is True
    else:
        assert [(d.run_id, d.reason, d.attempts) for d in letters] == [
            (ids[1], "permanent_error", 1)
        ]


async def test_without_linger_a_claim_goes_out_at_once(
    store: SqliteStore, running: Callable[..., _Running]
) -> None:
    fake = _fake()
    r = running(fake, linger_ms=0)
    for i in range(2):
        await _enqueue(store, ECHO, [f"c{i}"])
        r.dispatcher.wake()
        async with asyncio.timeout(5):
            while len(fake.batch_calls) < i + 1:  # noqa: ASYNC110 - sent before the next step exists
                await asyncio.sleep(0.005)
    await r.drained()
    assert [len(keys) for _, keys in fake.batch_calls] == [1, 1]


async def test_linger_gathers_steps_queued_apart_into_one_call(
    store: SqliteStore, running: Callable[..., _Running]
) -> None:
    fake = _fake()
    r = running(fake, linger_ms=800)
    t0 = time.monotonic()
    for i in range(3):
        await _enqueue(store, ECHO, [f"c{i}"])
        r.dispatcher.wake()
        await asyncio.sleep(0.05)
    await r.drained()
    assert [len(keys) for _, keys in fake.batch_calls] == [3]
    assert time.monotonic() - t0 >= 0.8  # the part-filled batch waited for its linger


async def test_a_full_batch_does_not_wait_for_the_linger(
    store: SqliteStore, running: Callable[..., _Running]
) -> None:
    await _enqueue(store, ECHO, [f"c{i}" for i in range(4)])
    fake = _fake(max_batch=4)
    t0 = time.monotonic()
    r = running(fake, linger_ms=1000)
    await r.drained()
    assert [len(keys) for _, keys in fake.batch_calls] == [4]
    assert time.monotonic() - t0 < 0.9


async def test_mixed_actions_never_share_a_batch(
    store: SqliteStore, running: Callable[..., _Running]
) -> None:
    a = {"steps": [{"connector": "dest", "action": "a"}]}
    b = {"steps": [{"connector": "dest", "action": "b"}]}
    for i in range(3):
        await _enqueue(store, a, [f"a{i}"])
        await _enqueue(store, b, [f"b{i}"])
    fake = _fake(actions=["a", "b"])
    r = running(fake)
    await r.drained()
    assert sorted((action, len(keys)) for action, keys in fake.batch_calls) == [("a", 3), ("b", 3)]


async def test_a_contacts_two_steps_go_out_in_order_in_separate_calls(
    store: SqliteStore, running: Callable[..., _Running]
) -> None:
    first = await _enqueue(store, ECHO, ["same", "x", "y"])
    second = await _enqueue(store, ECHO, ["same", "z"])
    fake = _fake()
    r = running(fake, linger_ms=0)
    await r.drained()
    calls = [keys for _, keys in fake.batch_calls]
    where = {k: n for n, keys in enumerate(calls) for k in keys}
    assert where[f"{first[0]}:0"] < where[f"{second[0]}:0"]  # never together, never reversed
    assert len(where) == 5


async def test_the_byte_limit_splits_batches(
    store: SqliteStore, running: Callable[..., _Running]
) -> None:
    ids = await _enqueue(store, ECHO, [f"c{i}" for i in range(6)])
    one = len(json.dumps(await _payload(store, ids[0]), separators=(",", ":")))
    limit = one * 5 // 2  # two steps fit, a third does not
    fake = _fake(max_batch_bytes=limit)
    sizes: list[int] = []
    real = fake.invoke_batch

    async def spy(action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        sizes.append(sum(len(json.dumps(i.payload, separators=(",", ":"))) for i in items))
        return await real(action, items)

    fake.invoke_batch = spy  # type: ignore[method-assign]
    r = running(fake)
    await r.drained()
    assert [len(keys) for _, keys in fake.batch_calls] == [2, 2, 2]
    assert all(s <= limit for s in sizes)


async def _payload(store: SqliteStore, run_id: str) -> dict[str, Any]:
    """The payload a step of `run_id` is delivered with (as the dispatcher builds it)."""
    plan = await store.read(lambda tx: tx.run_plan(run_id))
    assert plan is not None
    return {**plan.base, "step": 0, "params": dict(plan.steps[0].params)}


async def test_an_open_circuit_holds_the_batch_without_spending_attempts(
    store: SqliteStore, running: Callable[..., _Running]
) -> None:
    ids = await _enqueue(store, ECHO, ["a", "b"])
    fake = _fake(fail_times=1)
    r = running(fake, breaker_failures=1, breaker_cooldown_s=0.3, max_attempts=2)
    await r.drained()
    # The failed call opened the circuit; the retry waited for the probe instead of failing.
    assert [len(keys) for _, keys in fake.batch_calls] == [2, 2]
    runs = await r.runs(ids)
    assert _statuses(runs) == [StepStatus.STEP_STATUS_SUCCEEDED] * 2
    assert [run.steps[0].attempts for run in runs] == [2, 2]
