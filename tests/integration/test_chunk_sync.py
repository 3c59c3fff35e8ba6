"""Chunk sync runs through a real server: an import starts one run per chunk, not per row."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast
from unittest import mock

import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.domain.contacts import _IMPORT_CHUNK, ContactService
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from switchboard.server.runs.sync import ERASED_SKIP
from switchboard.v1 import campaigns_pb2

StartApp = Callable[..., Awaitable[App]]
RunStatus = campaigns_pb2.RunStatus
StepStatus = campaigns_pb2.StepStatus
CHANGED = "contact.changed"


def _config(**tool: Any) -> dict[str, Any]:
    options = {"actions": ["contacts.upsert", "contacts.erase"], "max_batch": 100}
    from switchboard.server.config.defaults import built_in_connectors

    connectors: dict[str, Any] = {n: c.model_dump() for n, c in built_in_connectors().items()}
    connectors["tool"] = {"kind": "fake", "options": options, **tool}
    sync = {"chunk_runs": True, "destinations": {"tool": {"connector": "tool"}}}  # no crm
    return {
        "connectors": connectors,
        "sync": sync,
        "dispatch": {"poll_interval_s": 0.05, "batch_linger_ms": 0},
    }


def _tool(app: App) -> FakeConnector:
    return cast(FakeConnector, app.connectors["tool"])


async def _settled(sb: Switchboard, count: int, timeout_s: float = 30.0) -> list[campaigns_pb2.Run]:
    """The `contact.changed` runs once `count` exist and every one has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = list((await sb.campaigns.list_runs(event=CHANGED, page_size=500)).runs)
        done = (RunStatus.RUN_STATUS_SUCCEEDED, RunStatus.RUN_STATUS_FAILED)
        if len(runs) >= count and all(r.status in done for r in runs):
            return runs
        assert time.monotonic() < deadline, f"runs not settled: {[r.status for r in runs]}"
        await asyncio.sleep(0.05)


def _items(run: campaigns_pb2.Run) -> dict[str, Any]:
    return {k: dict(v) for k, v in run.steps[0].result["items"].items()}


async def test_an_import_starts_one_run_per_chunk_and_every_contact_lists_it(
    start_app: StartApp,
) -> None:
    app = await start_app(**_config())
    rows = [{"email": f"chunk{i}@example.com", "first_name": f"C{i}"} for i in range(1000)]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        summary = await sb.contacts.import_([rows])
        assert summary.created == 1000
        runs = await _settled(sb, math.ceil(1000 / _IMPORT_CHUNK))
        assert len(runs) == math.ceil(1000 / _IMPORT_CHUNK)
        assert all(r.status == RunStatus.RUN_STATUS_SUCCEEDED for r in runs)
        assert sorted(int(r.attributes["contacts"]) for r in runs) == [500, 500]
        by_contact: dict[str, str] = {}
        for run in runs:
            for contact_id, state in _items(run).items():
                assert state["status"] == "STEP_STATUS_SUCCEEDED"
                by_contact[contact_id] = run.id
        assert len(by_contact) == 1000
        for run in runs:  # every item succeeded: the ended runs keep no snapshot
            plan = await app.store.read(lambda tx, run_id=run.id: tx.run_plan(run_id))
            assert plan is not None
            assert plan.base["items"] == {}
            assert [s.action for s in plan.steps] == ["contacts.upsert"]
        for contact_id in list(by_contact)[::97]:  # a spread of contacts, through ListRuns
            listed = await sb.campaigns.list_runs(contact_id=contact_id, event=CHANGED)
            assert [r.id for r in listed.runs] == [by_contact[contact_id]]
    tool = _tool(app)
    sent = [key for _, keys in tool.batch_calls for key in keys]
    assert len(sent) == 1000
    assert len(tool.batch_calls) <= 10  # <= 1 vendor call per 100 contacts


async def test_a_call_during_an_import_chunk_goes_in_between_its_parts(
    start_app: StartApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chunk is written in parts of its own transactions: a call's write waits for one
    # part, not the whole chunk; and the parts still make one chunk run.
    first_part = threading.Event()
    apply_part = ContactService._apply_part

    def slow_first_part(self: ContactService, *args: Any, **kwargs: Any) -> Any:
        if not first_part.is_set():  # the call arrives while the first part is written
            first_part.set()
            time.sleep(0.1)
        return apply_part(self, *args, **kwargs)

    monkeypatch.setattr(ContactService, "_apply_part", slow_first_part)
    app = await start_app(**_config())
    rows = [{"email": f"part{i}@example.com", "first_name": f"P{i}"} for i in range(_IMPORT_CHUNK)]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        importing = asyncio.create_task(sb.contacts.import_([rows]))
        assert await asyncio.to_thread(first_part.wait, 10.0)
        upserted = await sb.contacts.upsert(email="caller@example.com")
        summary = await importing
        assert summary.created == _IMPORT_CHUNK
        last = await sb.contacts.get(email=f"part{_IMPORT_CHUNK - 1}@example.com")
        assert upserted.contact.updated_at.ToMicroseconds() < last.updated_at.ToMicroseconds()
        runs = await _settled(sb, 2)
        chunks = [r for r in runs if "chunk" in r.attributes]
        assert [int(r.attributes["contacts"]) for r in chunks] == [_IMPORT_CHUNK]
        assert len(_items(chunks[0])) == _IMPORT_CHUNK


async def test_a_partial_batch_failure_retries_only_the_failed_items(start_app: StartApp) -> None:
    app = await start_app(**_config())
    tool = _tool(app)
    tool.fail_email("flaky@example.com", RetryableConnectorError("try later"))
    tool.fail_email("bad@example.com", PermanentConnectorError("no such list"))
    rows = [{"email": f"ok{i}@example.com"} for i in range(20)]
    rows += [{"email": "flaky@example.com"}, {"email": "bad@example.com"}]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([rows])
        [run] = await _settled(sb, 1)
        bad = (await sb.contacts.get(email="bad@example.com")).id
        flaky = (await sb.contacts.get(email="flaky@example.com")).id
        letters = list((await sb.connectors.list_dead_letters()).dead_letters)
    items = _items(run)
    assert items[flaky]["status"] == "STEP_STATUS_SUCCEEDED"
    assert items[flaky]["attempts"] == 2
    assert items[bad]["status"] == "STEP_STATUS_FAILED"
    ok = [s for c, s in items.items() if c not in (bad, flaky)]
    assert [s["attempts"] for s in ok] == [1] * 20
    assert run.status == RunStatus.RUN_STATUS_FAILED
    # Two calls: all 22 items, then the one retried item alone.
    assert [len(keys) for _, keys in tool.batch_calls] == [22, 1]
    assert tool.batch_calls[1][1] == [f"{run.id}:0:{flaky}"]
    assert [(d.run_id, d.contact_id) for d in letters] == [(run.id, bad)]
    # The ended run keeps the snapshot a redrive would send, and no other.
    plan = await app.store.read(lambda tx: tx.run_plan(run.id))
    assert plan is not None
    assert list(plan.base["items"]) == [bad]
    assert plan.base["items"][bad]["contact"]["email"] == "bad@example.com"
    assert "of 22 contacts failed" in run.steps[0].error


async def test_an_opted_out_contacts_item_is_skipped(start_app: StartApp) -> None:
    app = await start_app(**_config(purposes=["email_marketing"]))
    rows = [
        {"email": "yes@example.com", "consent": True},
        {"email": "no@example.com", "consent": False},
    ]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([rows])
        [run] = await _settled(sb, 1)
        no = (await sb.contacts.get(email="no@example.com")).id
        yes = (await sb.contacts.get(email="yes@example.com")).id
    items = _items(run)
    assert items[no]["status"] == "STEP_STATUS_SKIPPED"
    assert items[yes]["status"] == "STEP_STATUS_SUCCEEDED"
    assert run.status == RunStatus.RUN_STATUS_SUCCEEDED
    sent = [key for _, keys in _tool(app).batch_calls for key in keys]
    assert sent == [f"{run.id}:0:{yes}"]


async def test_a_change_before_delivery_folds_into_the_chunk_run(start_app: StartApp) -> None:
    app = await start_app(**_config())
    await app.dispatcher.stop(0.1)  # the chunk run waits, unclaimed, until started again
    rows = [{"email": f"fold{i}@example.com", "first_name": "Old"} for i in range(3)]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([rows])
        await sb.contacts.import_([[{"email": "fold1@example.com", "first_name": "New"}]])
        app.dispatcher.start()
        runs = await _settled(sb, 1)
    assert len(runs) == 1  # the second import's change joined the waiting chunk run
    names = {p["contact"]["email"]: p["contact"]["first_name"] for p in _payloads(app)}
    assert names == {
        "fold0@example.com": "Old",
        "fold1@example.com": "New",
        "fold2@example.com": "Old",
    }


async def test_an_erased_contacts_item_is_skipped(start_app: StartApp) -> None:
    app = await start_app(**_config())
    await app.dispatcher.stop(0.1)
    rows = [{"email": f"erase{i}@example.com"} for i in range(3)]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([rows])
        gone = (await sb.contacts.get(email="erase1@example.com")).id
        await sb.contacts.delete(id=gone)
        app.dispatcher.start()
        runs = await _settled(sb, 1)
    [run] = [r for r in runs if r.event == CHANGED]
    assert _items(run)[gone] == {
        "status": "STEP_STATUS_SKIPPED",
        "attempts": 0.0,
        "skip_reason": ERASED_SKIP,
    }
    sent = {p["contact"]["email"] for p in _payloads(app) if p["event"] == CHANGED}
    assert sent == {"erase0@example.com", "erase2@example.com"}


def _payloads(app: App) -> list[dict[str, Any]]:
    return list(_tool(app).batch_payloads)


async def test_a_redriven_item_dead_letter_sends_that_contact_alone(start_app: StartApp) -> None:
    app = await start_app(**_config())
    tool = _tool(app)
    tool.fail_email("bad@example.com", PermanentConnectorError("no such list"))
    rows = [{"email": f"ok{i}@example.com"} for i in range(5)] + [{"email": "bad@example.com"}]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([rows])
        [run] = await _settled(sb, 1)
        [letter] = (await sb.connectors.list_dead_letters()).dead_letters
        await sb.connectors.redrive_dead_letters(ids=[letter.id])
        deadline = time.monotonic() + 20
        while (run := await sb.campaigns.get_run(run.id)).status != RunStatus.RUN_STATUS_SUCCEEDED:
            assert time.monotonic() < deadline, run
            await asyncio.sleep(0.05)
    assert _items(run)[letter.contact_id]["status"] == "STEP_STATUS_SUCCEEDED"
    assert [len(keys) for _, keys in tool.batch_calls] == [6, 1]
    assert tool.batch_calls[1][1] == [f"{run.id}:0:{letter.contact_id}"]
    # Sent from the snapshot the ended run kept; once it succeeded, none is left.
    assert _payloads(app)[-1]["contact"]["email"] == "bad@example.com"
    assert len(_items(run)) == 6
    plan = await app.store.read(lambda tx: tx.run_plan(run.id))
    assert plan is not None
    assert plan.base["items"] == {}


async def test_erasing_a_failed_items_contact_scrubs_the_snapshot_its_ended_run_kept(
    start_app: StartApp,
) -> None:
    app = await start_app(**_config())
    _tool(app).fail_email("gone@example.com", PermanentConnectorError("no such list"))
    rows = [{"email": "kept@example.com"}, {"email": "gone@example.com", "first_name": "Ada"}]
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([rows])
        [run] = await _settled(sb, 1)
        gone = (await sb.contacts.get(email="gone@example.com")).id
        await sb.contacts.delete(id=gone)
    plan = await app.store.read(lambda tx: tx.run_plan(run.id))
    assert plan is not None
    assert plan.base["items"] == {gone: {"contact": {"id": gone}, "attributes": {}}}


def _events_of(app: App, contact_id: str) -> list[tuple[int, str, str | None]]:
    """(seq, type, run_id) of the contact's change events and of the runs' `run.started`."""
    with sqlite3.connect(f"file:{app.settings.database.path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT seq, type, run_id FROM events WHERE contact_id = ? "
            "OR (type = 'run.started' AND aggregate_id IN "
            "(SELECT run_id FROM events WHERE contact_id = ?)) ORDER BY seq",
            (contact_id, contact_id),
        ).fetchall()
        assert db.execute("SELECT count(*) FROM run_contacts").fetchone() == (0,)
    return [(int(s), str(t), r) for s, t, r in rows]


async def test_each_change_event_names_the_chunk_run_that_carried_it(
    start_app: StartApp,
) -> None:
    # ListRuns(contact_id) finds chunk runs through the changes' events, not a table of
    # its own; the events keep their order: the changes first, then the run they started.
    app = await start_app(**_config())
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        rows = [{"email": f"named{i}@example.com", "first_name": "A"} for i in range(3)]
        await sb.contacts.import_([rows])
        [first] = await _settled(sb, 1)
        changed = [{"email": "named0@example.com", "first_name": "B"}, rows[1]]
        summary = await sb.contacts.import_([changed])
        assert (summary.updated, summary.unchanged) == (1, 1)
        runs = await _settled(sb, 2)
        [second] = [r for r in runs if r.id != first.id]
        ids = [(await sb.contacts.get(email=r["email"])).id for r in rows]
        listed = await sb.campaigns.list_runs(contact_id=ids[0])
        assert [r.id for r in listed.runs] == [second.id, first.id]
        listed = await sb.campaigns.list_runs(contact_id=ids[1])
        assert [r.id for r in listed.runs] == [first.id]
    assert _events_of(app, ids[0]) == [
        (mock.ANY, "contact.created", first.id),
        (mock.ANY, "run.started", None),
        (mock.ANY, "contact.updated", second.id),
        (mock.ANY, "run.started", None),
    ]
    seqs = [seq for seq, _, _ in _events_of(app, ids[0])]
    assert seqs == sorted(seqs)


async def test_chunk_runs_listed_in_run_contacts_by_an_older_version_are_still_found(
    start_app: StartApp,
) -> None:
    # Files written before events named their chunk run list the contacts in run_contacts:
    # ListRuns finds those runs, and erasure scrubs the snapshot a failed item left there.
    app = await start_app(**_config())
    _tool(app).fail_email("old@example.com", PermanentConnectorError("no such list"))
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=30) as sb:
        await sb.contacts.import_([[{"email": "old@example.com", "first_name": "Ada"}]])
        [run] = await _settled(sb, 1)
        contact_id = (await sb.contacts.get(email="old@example.com")).id

        def as_older_version(tx: Any) -> None:
            tx._db.execute("DROP TRIGGER events_append_only_update")
            tx._db.execute("UPDATE events SET run_id = NULL")
            tx._db.execute(
                "INSERT INTO run_contacts (contact_id, run_id) VALUES (?, ?)", (contact_id, run.id)
            )

        await app.store.write(as_older_version)
        listed = await sb.campaigns.list_runs(contact_id=contact_id)
        assert [r.id for r in listed.runs] == [run.id]
        plan = await app.store.read(lambda tx: tx.run_plan(run.id))
        assert plan is not None
        assert plan.base["items"][contact_id]["contact"]["first_name"] == "Ada"
        await sb.contacts.delete(id=contact_id)
    plan = await app.store.read(lambda tx: tx.run_plan(run.id))
    assert plan is not None
    assert plan.base["items"] == {contact_id: {"contact": {"id": contact_id}, "attributes": {}}}
