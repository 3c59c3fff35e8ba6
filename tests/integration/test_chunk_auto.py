"""`sync.chunk_runs = "auto"` (the default) through a real server: an import sends one chunk
run to each destination with a batch call, and one run per contact to the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App, StartupError
from switchboard.server.config.defaults import built_in_connectors
from switchboard.server.connectors.crm import external_id_for
from switchboard.server.connectors.fake import FakeConnector
from switchboard.v1 import campaigns_pb2

StartApp = Callable[..., Awaitable[App]]
RunStatus = campaigns_pb2.RunStatus
CHANGED = "contact.changed"
ENDED = (RunStatus.RUN_STATUS_SUCCEEDED, RunStatus.RUN_STATUS_FAILED)


def _mixed(**sync: Any) -> dict[str, Any]:
    """`tool` has a batch call (100 a call), `plain` has none; both are destinations."""
    connectors: dict[str, Any] = {n: c.model_dump() for n, c in built_in_connectors().items()}
    actions = ["contacts.upsert", "contacts.erase"]
    connectors["tool"] = {"kind": "fake", "options": {"actions": actions, "max_batch": 100}}
    connectors["plain"] = {"kind": "fake", "options": {"actions": actions}}
    destinations = {"tool": {"connector": "tool"}, "plain": {"connector": "plain"}}
    return {
        "connectors": connectors,
        "sync": {"destinations": destinations, **sync},
        "dispatch": {"poll_interval_s": 0.05, "batch_linger_ms": 0},
    }


async def _settled(sb: Switchboard, count: int, timeout_s: float = 30.0) -> list[campaigns_pb2.Run]:
    """The `contact.changed` runs once `count` exist and every one has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = list((await sb.campaigns.list_runs(event=CHANGED, page_size=500)).runs)
        if len(runs) >= count and all(r.status in ENDED for r in runs):
            return runs
        assert time.monotonic() < deadline, f"runs not settled: {[r.status for r in runs]}"
        await asyncio.sleep(0.05)


def _is_chunk(run: campaigns_pb2.Run) -> bool:
    return "chunk" in run.attributes and bool(run.attributes["chunk"])


def _connectors(run: campaigns_pb2.Run) -> list[str]:
    return [s.connector for s in run.steps]


async def test_an_import_chunks_the_batch_destination_and_runs_the_other_per_contact(
    start_app: StartApp,
) -> None:
    app = await start_app(**_mixed())
    rows = [{"email": f"mixed{i}@example.com"} for i in range(30)]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        assert (await sb.contacts.import_([rows])).created == 30
        runs = await _settled(sb, 31)
        someone = (await sb.contacts.get(email="mixed7@example.com")).id
        theirs = list((await sb.campaigns.list_runs(contact_id=someone, event=CHANGED)).runs)
    chunks = [r for r in runs if _is_chunk(r)]
    singles = [r for r in runs if not _is_chunk(r)]
    assert [_connectors(r) for r in chunks] == [["tool"]]
    assert int(chunks[0].attributes["contacts"]) == 30
    assert len(singles) == 30
    assert all(_connectors(r) == ["plain"] and r.contact_id for r in singles)
    assert all(r.status == RunStatus.RUN_STATUS_SUCCEEDED for r in runs)
    # The contact's ListRuns shows both: the chunk run covering it and its own run.
    assert sorted(_connectors(r)[0] for r in theirs) == ["plain", "tool"]
    assert {r.id for r in theirs} >= {chunks[0].id}
    tool = cast(FakeConnector, app.connectors["tool"])
    plain = cast(FakeConnector, app.connectors["plain"])
    assert [len(keys) for _, keys in tool.batch_calls] == [30]
    assert len(plain.calls) == 30
    assert not plain.batch_calls


async def test_the_default_crm_destination_gets_chunk_runs_in_batch_calls(
    start_app: StartApp,
) -> None:
    app = await start_app(dispatch={"poll_interval_s": 0.05, "batch_linger_ms": 0})
    rows = [{"email": f"crm{i}@example.com", "first_name": "Imp"} for i in range(250)]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([rows])
        [run] = await _settled(sb, 1)
        ids = [(await sb.contacts.get(email=f"crm{i}@example.com")).id for i in (0, 125, 249)]
        listed = [
            [r.id for r in (await sb.campaigns.list_runs(contact_id=c, event=CHANGED)).runs]
            for c in ids
        ]
    assert _is_chunk(run)
    assert _connectors(run) == ["crm"]
    assert run.status == RunStatus.RUN_STATUS_SUCCEEDED
    items = run.steps[0].result["items"]
    assert len(items) == 250
    assert {items[c]["status"] for c in items} == {"STEP_STATUS_SUCCEEDED"}
    assert listed == [[run.id]] * 3
    for contact_id in ids:
        kept = await app.store.read(lambda tx, c=contact_id: tx.state_get("crm", "contacts", c))
        assert kept is not None
        assert kept["external_id"] == external_id_for(contact_id)
        assert kept["contact"]["first_name"] == "Imp"


async def test_an_upsert_folds_into_the_waiting_chunk_run(start_app: StartApp) -> None:
    app = await start_app(dispatch={"poll_interval_s": 0.05, "batch_linger_ms": 0})
    await app.dispatcher.stop(0.1)  # the chunk run waits, unclaimed
    rows = [{"email": f"fold{i}@example.com", "first_name": "Old"} for i in range(3)]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([rows])
        changed = await sb.contacts.upsert(email="fold1@example.com", first_name="New")
        app.dispatcher.start()
        runs = await _settled(sb, 1)
    assert len(runs) == 1  # the interactive write joined the import's chunk run
    kept = await app.store.read(lambda tx: tx.state_get("crm", "contacts", changed.contact.id))
    assert kept is not None
    assert kept["contact"]["first_name"] == "New"


async def test_an_erasure_before_delivery_skips_the_item_and_erases_in_the_crm(
    start_app: StartApp,
) -> None:
    app = await start_app(dispatch={"poll_interval_s": 0.05, "batch_linger_ms": 0})
    await app.dispatcher.stop(0.1)
    rows = [{"email": f"gone{i}@example.com"} for i in range(3)]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([rows])
        ids = [(await sb.contacts.get(email=f"gone{i}@example.com")).id for i in range(3)]
        await sb.contacts.delete(id=ids[1])
        app.dispatcher.start()
        [run] = await _settled(sb, 1)
        deadline = time.monotonic() + 20
        while True:
            erased = list((await sb.campaigns.list_runs(event="contact.erased")).runs)
            if erased and all(r.status in ENDED for r in erased):
                break
            assert time.monotonic() < deadline, erased
            await asyncio.sleep(0.05)
    assert run.steps[0].result["items"][ids[1]]["status"] == "STEP_STATUS_SKIPPED"
    assert [r.status for r in erased] == [RunStatus.RUN_STATUS_SUCCEEDED]
    kept = [await app.store.read(lambda tx, c=c: tx.state_get("crm", "contacts", c)) for c in ids]
    assert [k is not None for k in kept] == [True, False, True]


async def test_on_refuses_a_destination_without_a_batch_call(start_app: StartApp) -> None:
    with pytest.raises(StartupError, match=r"'plain'.*no batch call.*use 'auto'"):
        await start_app(**_mixed(chunk_runs="on"))


async def test_off_runs_every_destination_per_contact(start_app: StartApp) -> None:
    app = await start_app(**_mixed(chunk_runs="off"))
    rows = [{"email": f"off{i}@example.com"} for i in range(5)]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([rows])
        runs = await _settled(sb, 5)
    assert len(runs) == 5
    assert all(_connectors(r) == ["tool", "plain"] and not _is_chunk(r) for r in runs)
