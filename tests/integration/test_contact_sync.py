"""Contact sync through a real server: every accepted contact write reaches the destinations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.connectors.crm import external_id_for
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.runs.sync import ERASED_SKIP
from switchboard.v1 import campaigns_pb2
from tests.event_log import events_of

StartApp = Callable[..., Awaitable[App]]
RunStatus = campaigns_pb2.RunStatus
StepStatus = campaigns_pb2.StepStatus
DONE = (RunStatus.RUN_STATUS_SUCCEEDED, RunStatus.RUN_STATUS_FAILED)

# The built-in connectors plus a fake "tool" that records what it receives.
TOOL = {"kind": "fake", "options": {"actions": ["contacts.upsert", "contacts.erase"]}}


def _connectors(**tool_options: Any) -> dict[str, Any]:
    from switchboard.server.config.defaults import built_in_connectors

    connectors: dict[str, Any] = {n: c.model_dump() for n, c in built_in_connectors().items()}
    connectors["tool"] = {**TOOL, "options": {**TOOL["options"], **tool_options}}
    return connectors


def _sync(**destinations: dict[str, Any]) -> dict[str, Any]:
    return {"destinations": destinations}


CRM = {"connector": "crm"}
TOOL_DEST = {"connector": "tool"}


async def _runs(sb: Switchboard, contact_id: str, event: str) -> list[campaigns_pb2.Run]:
    return list((await sb.campaigns.list_runs(contact_id=contact_id, event=event)).runs)


async def _finished(
    sb: Switchboard, contact_id: str, event: str, count: int = 1, timeout_s: float = 10.0
) -> list[campaigns_pb2.Run]:
    """The contact's runs of `event` once `count` of them exist and all have ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = await _runs(sb, contact_id, event)
        if len(runs) >= count and all(r.status in DONE for r in runs):
            return runs
        assert time.monotonic() < deadline, f"runs not finished: {runs}"
        await asyncio.sleep(0.05)


def _tool(app: App) -> FakeConnector:
    return cast(FakeConnector, app.connectors["tool"])


async def test_an_upsert_starts_one_run_with_a_step_per_destination(start_app: StartApp) -> None:
    app = await start_app(connectors=_connectors(), sync=_sync(crm=CRM, tool=TOOL_DEST))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        created = (await sb.contacts.upsert(email="ada@example.com", first_name="Ada")).contact
        [run] = await _finished(sb, created.id, "contact.changed")
    assert run.status == RunStatus.RUN_STATUS_SUCCEEDED
    assert [(s.connector, s.action, s.status) for s in run.steps] == [
        ("crm", "contacts.upsert", StepStatus.STEP_STATUS_SUCCEEDED),
        ("tool", "contacts.upsert", StepStatus.STEP_STATUS_SUCCEEDED),
    ]
    assert run.steps[0].result["external_id"] == external_id_for(created.id)
    stored = await app.store.connector_state("crm").get("contacts", created.id)
    assert stored is not None
    assert stored["contact"]["first_name"] == "Ada"
    [(action, payload, _)] = list(_tool(app).calls)
    assert action == "contacts.upsert"
    assert payload["event"] == "contact.changed"
    assert payload["params"] == {"mode": "upsert"}
    assert payload["attributes"]["version"] == 1
    assert payload["contact"]["email"] == "ada@example.com"


async def test_an_unchanged_upsert_starts_no_run(start_app: StartApp) -> None:
    app = await start_app(connectors=_connectors(), sync=_sync(tool=TOOL_DEST))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        first = (await sb.contacts.upsert(email="same@example.com", company="Acme")).contact
        await _finished(sb, first.id, "contact.changed")
        again = (await sb.contacts.upsert(email="same@example.com", company="Acme")).contact
        assert again.version == first.version
        changed = (await sb.contacts.upsert(email="same@example.com", company="Beta")).contact
        runs = await _finished(sb, first.id, "contact.changed", count=2)
    assert len(runs) == 2
    assert runs[0].attributes["version"] == changed.version == 2
    assert list(runs[0].attributes["fields"]) == ["company"]


async def test_no_destinations_no_runs(start_app: StartApp) -> None:
    app = await start_app(connectors=_connectors(), sync=_sync())
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        created = (await sb.contacts.upsert(email="quiet@example.com")).contact
        await asyncio.sleep(0.2)
        assert await _runs(sb, created.id, "") == []


async def test_the_default_configuration_syncs_to_the_embedded_crm(sb: Switchboard) -> None:
    created = (await sb.contacts.upsert(email="default@example.com")).contact
    [run] = await _finished(sb, created.id, "contact.changed")
    assert [(s.connector, s.action) for s in run.steps] == [("crm", "contacts.upsert")]
    assert run.status == RunStatus.RUN_STATUS_SUCCEEDED


async def test_an_import_starts_a_run_per_changed_row_and_all_are_delivered(
    start_app: StartApp,
) -> None:
    # Per-row runs (`chunk_runs` off); chunk runs are tested in test_chunk_sync.py.
    sync = {**_sync(tool=TOOL_DEST), "chunk_runs": False}
    app = await start_app(connectors=_connectors(), sync=sync)
    rows = [{"email": f"imp{i}@example.com", "first_name": f"I{i}"} for i in range(300)]
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        summary = await sb.contacts.import_([rows[:200], rows[200:]])
        assert summary.created == 300
        await _drained(app)
        # Again, with one row changed: only that row starts a run.
        again = await sb.contacts.import_([[*rows[:299], {**rows[299], "first_name": "New"}]])
        assert (again.unchanged, again.updated) == (299, 1)
        await _drained(app)
        listed = await sb.campaigns.list_runs(event="contact.changed", page_size=500)
    assert len(listed.runs) == 301
    assert all(r.status == RunStatus.RUN_STATUS_SUCCEEDED for r in listed.runs)
    sent = [payload["contact"]["email"] for _, payload, _ in _tool(app).calls]
    assert sorted(sent) == sorted([row["email"] for row in rows] + [rows[299]["email"]])
    assert _tool(app).calls[-1][1]["contact"]["first_name"] == "New"


async def _drained(app: App, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while await app.store.read(lambda tx: tx.outbox_depth()):
        assert time.monotonic() < deadline, "sync runs not delivered"
        await asyncio.sleep(0.05)


async def test_rapid_changes_coalesce_and_the_latest_wins(start_app: StartApp) -> None:
    # The tool answers slowly and takes one call at a time: while the first change is in
    # flight, the next ones wait in one run behind it, each replacing its snapshot.
    connectors = _connectors(latency_s=0.4)
    connectors["tool"]["max_concurrency"] = 1
    app = await start_app(connectors=connectors, sync=_sync(tool=TOOL_DEST))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        created = (await sb.contacts.upsert(email="fast@example.com", first_name="v1")).contact
        deadline = time.monotonic() + 5
        while not _tool(app).calls:  # the first run's step is in flight
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        for n in range(2, 6):
            await sb.contacts.upsert(id=created.id, first_name=f"v{n}")
        runs = await _finished(sb, created.id, "contact.changed", count=2)
    assert len(runs) == 2  # five changes, two deliveries
    newest, first = runs
    assert newest.attributes["changes"] == 4
    assert newest.attributes["version"] == 5
    names = [payload["contact"]["first_name"] for _, payload, _ in _tool(app).calls]
    assert names == ["v1", "v5"]  # in order, and the latest snapshot won
    keys = [ctx.idempotency_key for _, _, ctx in _tool(app).calls]
    assert keys == [f"{first.id}:0", f"{newest.id}:0"]


async def test_write_back_updates_the_contact_without_another_sync(start_app: StartApp) -> None:
    crm = {**CRM, "write_back": {"external_ids.crm": "external_id"}}
    app = await start_app(connectors=_connectors(), sync=_sync(crm=crm, tool=TOOL_DEST))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        created = (await sb.contacts.upsert(email="wb@example.com")).contact
        assert created.version == 1
        [run] = await _finished(sb, created.id, "contact.changed")
        contact = await sb.contacts.get(id=created.id)
        await asyncio.sleep(0.2)  # a sync run started by the write-back would show by now
        runs = await _runs(sb, created.id, "contact.changed")
    assert contact.external_ids["crm"] == external_id_for(created.id)
    assert contact.version == 2
    assert [r.id for r in runs] == [run.id]
    assert len(_tool(app).calls) == 1
    events = await events_of(app.store, created.id)
    assert [e.type for e in events] == ["contact.created", "contact.updated"]
    assert events[1].contact_changed.by == "write_back"
    assert events[1].contact_changed.run_id == run.id


async def test_write_back_adds_an_esp_subscription_to_lists(start_app: StartApp) -> None:
    esp = {
        "connector": "esp",
        "action": "lists.subscribe",
        "params": {"list": "newsletter"},
        "write_back": {"lists": "list"},
    }
    app = await start_app(connectors=_connectors(), sync=_sync(esp=esp))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        created = (await sb.contacts.upsert(email="sub@example.com", consent=True)).contact
        await _finished(sb, created.id, "contact.changed")
        contact = await sb.contacts.get(id=created.id)
    assert list(contact.lists) == ["newsletter"]
    assert contact.version == 2


async def test_a_failing_destination_dead_letters_like_any_run(start_app: StartApp) -> None:
    connectors = _connectors(fail_times=100, fail_mode="permanent")
    app = await start_app(connectors=connectors, sync=_sync(tool=TOOL_DEST))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        created = (await sb.contacts.upsert(email="dead@example.com")).contact
        [run] = await _finished(sb, created.id, "contact.changed")
        letters = await sb.connectors.list_dead_letters(connector="tool")
    assert run.status == RunStatus.RUN_STATUS_FAILED
    assert run.steps[0].status == StepStatus.STEP_STATUS_FAILED
    assert [(d.run_id, d.contact_id) for d in letters.dead_letters] == [(run.id, created.id)]


async def test_field_mapping_and_modes(start_app: StartApp) -> None:
    mapped = {
        "connector": "tool",
        "fields": {"mail": "email", "plan": "attributes.plan", "phone": "phone"},
    }
    mirror = {**mapped, "mode": "mirror"}
    known_only = {"connector": "tool", "mode": "update_only"}
    app = await start_app(
        connectors=_connectors(),
        sync=_sync(mapped=mapped, mirror=mirror, known_only=known_only),
    )
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        created = (
            await sb.contacts.upsert(email="map@example.com", attributes={"plan": "pro"})
        ).contact
        [run] = await _finished(sb, created.id, "contact.changed")
    # update_only: the tool has no external id for this person, so it is not sent to.
    assert [s.connector for s in run.steps] == ["tool", "tool"]
    [upsert, mirrored] = [payload["contact"] for _, payload, _ in _tool(app).calls]
    consent = upsert["consent"]
    assert upsert == {
        "id": created.id,
        "mail": "map@example.com",
        "plan": "pro",
        "consent": consent,
    }
    assert mirrored == {**upsert, "phone": ""}  # mirror sends the empty phone: clear it


async def test_erasure_reaches_every_destination_once(start_app: StartApp) -> None:
    # The default `contact.erased` trigger already erases from crm and esp: the crm
    # destination adds nothing, the tool adds its own erase step.
    app = await start_app(connectors=_connectors(), sync=_sync(crm=CRM, tool=TOOL_DEST))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        created = (await sb.contacts.upsert(email="gone@example.com")).contact
        await _finished(sb, created.id, "contact.changed")
        await sb.contacts.delete(id=created.id)
        [run] = await _finished(sb, created.id, "contact.erased")
    assert [(s.connector, s.action) for s in run.steps] == [
        ("crm", "contacts.erase"),
        ("esp", "contacts.erase"),
        ("tool", "contacts.erase"),
    ]
    assert all(s.status == StepStatus.STEP_STATUS_SUCCEEDED for s in run.steps)
    assert await app.store.connector_state("crm").get("contacts", created.id) is None
    erase_payload = [p for a, p, _ in _tool(app).calls if a == "contacts.erase"]
    # Erasure sends the id and the email (what tools delete by), nothing else of the person.
    [erased] = [p["contact"] for p in erase_payload]
    assert erased["id"] == created.id
    assert erased["email"] == "gone@example.com"
    assert not [k for k, v in erased.items() if k not in ("id", "email", "consent") and v]


async def test_erasure_skips_changes_not_yet_sent(start_app: StartApp) -> None:
    connectors = _connectors(latency_s=0.4)
    connectors["tool"]["max_concurrency"] = 1
    app = await start_app(connectors=connectors, sync=_sync(tool=TOOL_DEST))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        created = (await sb.contacts.upsert(email="late@example.com", first_name="a")).contact
        deadline = time.monotonic() + 5
        while not _tool(app).calls:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await sb.contacts.upsert(id=created.id, first_name="b")  # waits behind the first
        await sb.contacts.delete(id=created.id)
        changed = await _finished(sb, created.id, "contact.changed", count=2)
        await _finished(sb, created.id, "contact.erased")
    skipped = changed[0]
    assert skipped.steps[0].status == StepStatus.STEP_STATUS_SKIPPED
    assert skipped.steps[0].skip_reason == ERASED_SKIP
    assert [a for a, _, _ in _tool(app).calls] == ["contacts.upsert", "contacts.erase"]
