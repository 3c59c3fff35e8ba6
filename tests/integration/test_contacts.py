"""ContactSync through the real client and a real server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from switchboard.client import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Switchboard,
)
from switchboard.server.app.build import App
from switchboard.v1 import campaigns_pb2
from tests.event_log import events_of


async def test_upsert_creates_then_merges(sb: Switchboard) -> None:
    first = await sb.contacts.upsert(
        email="  Ada@Example.COM ",
        first_name="Ada",
        phone="+44 20 7946 0958",
        lists=["newsletter"],
        attributes={"plan": "free"},
        country="gb",
    )
    assert first.created
    c = first.contact
    assert (c.email, c.phone, c.country, c.version) == ("ada@example.com", "+442079460958", "GB", 1)
    assert c.id.startswith("c_")
    assert len(c.id) == 28

    second = await sb.contacts.upsert(
        email="ada@example.com",
        last_name="Lovelace",
        lists=["customers"],
        attributes={"tier": "gold"},
    )
    assert not second.created
    m = second.contact
    assert (m.id, m.first_name, m.last_name, m.version) == (c.id, "Ada", "Lovelace", 2)
    assert list(m.lists) == ["newsletter", "customers"]
    assert dict(m.attributes) == {"plan": "free", "tier": "gold"}
    assert m.created_at == c.created_at
    assert m.updated_at.ToMicroseconds() >= c.updated_at.ToMicroseconds()


async def test_unchanged_upsert_keeps_version(sb: Switchboard) -> None:
    a = (await sb.contacts.upsert(email="same@example.com", first_name="S")).contact
    b = (await sb.contacts.upsert(email="same@example.com", first_name="S")).contact
    assert b.version == a.version == 1


async def test_update_mask_replaces_and_clears(sb: Switchboard) -> None:
    c = (
        await sb.contacts.upsert(email="m@example.com", phone="+33612345678", lists=["a", "b"])
    ).contact
    out = (await sb.contacts.upsert(id=c.id, lists=["c"], update_mask=["lists", "phone"])).contact
    assert list(out.lists) == ["c"]
    assert out.phone == ""
    assert out.email == "m@example.com"


async def test_stale_expected_version_is_aborted(sb: Switchboard) -> None:
    c = (await sb.contacts.upsert(email="v@example.com")).contact
    await sb.contacts.upsert(id=c.id, first_name="New", expected_version=1)
    with pytest.raises(AbortedError) as info:
        await sb.contacts.upsert(id=c.id, first_name="Old", expected_version=1)
    assert info.value.code == grpc.StatusCode.ABORTED
    assert "version 2" in info.value.message
    assert (await sb.contacts.get(id=c.id)).first_name == "New"


async def test_create_only_on_existing_email_already_exists(sb: Switchboard) -> None:
    await sb.contacts.upsert(email="dup@example.com")
    with pytest.raises(AlreadyExistsError, match=r"dup@example\.com"):
        await sb.contacts.upsert(email="dup@example.com", mode="create_only")


async def test_moving_to_a_taken_email_already_exists(sb: Switchboard) -> None:
    await sb.contacts.upsert(email="one@example.com")
    two = (await sb.contacts.upsert(email="two@example.com")).contact
    with pytest.raises(AlreadyExistsError):
        await sb.contacts.upsert(id=two.id, email="one@example.com")


@pytest.mark.parametrize(
    ("fields", "violations"),
    [
        pytest.param({"email": "not-an-email"}, {"contact.email"}, id="email"),
        pytest.param({"email": "a@example.com", "phone": "12"}, {"contact.phone"}, id="phone"),
        pytest.param(
            {"email": "a@example.com", "country": "France"}, {"contact.country"}, id="country"
        ),
        pytest.param(
            {"email": "x", "phone": "abc", "first_name": "n" * 201},
            {"contact.email", "contact.phone", "contact.first_name"},
            id="several",
        ),
        pytest.param({"id": "nope"}, {"contact.id"}, id="malformed-id"),
        pytest.param({"first_name": "No Key"}, {"contact"}, id="no-id-or-email"),
        pytest.param(
            {"email": "a@example.com", "lists": [""]}, {"contact.lists[0]"}, id="empty-list"
        ),
    ],
)
async def test_invalid_fields_are_named(
    sb: Switchboard, fields: dict[str, object], violations: set[str]
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await sb.contacts.upsert(**fields)  # type: ignore[arg-type]
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in info.value.field_violations} == violations
    assert all(v.description for v in info.value.field_violations)


async def test_unknown_update_mask_path_is_invalid(sb: Switchboard) -> None:
    c = (await sb.contacts.upsert(email="mask@example.com")).contact
    with pytest.raises(InvalidArgumentError) as info:
        await sb.contacts.upsert(id=c.id, update_mask=["version"])
    assert [v.field for v in info.value.field_violations] == ["update_mask"]


@pytest.mark.parametrize(
    "lookup",
    [
        pytest.param({"id": "c_01M847PNZXWYG14T8DV5Y61M89"}, id="id"),
        pytest.param({"email": "ghost@example.com"}, id="email"),
    ],
)
async def test_get_unknown_is_not_found(sb: Switchboard, lookup: dict[str, str]) -> None:
    with pytest.raises(NotFoundError):
        await sb.contacts.get(**lookup)


async def test_update_unknown_id_is_not_found(sb: Switchboard) -> None:
    with pytest.raises(NotFoundError):
        await sb.contacts.upsert(id="c_01M847PNZXWYG14T8DV5Y61M89", first_name="X")


async def test_read_after_write_is_fresh(sb: Switchboard) -> None:
    c = (await sb.contacts.upsert(email="fresh@example.com", first_name="A")).contact
    assert (await sb.contacts.get(email="fresh@example.com")).first_name == "A"  # now cached
    await sb.contacts.upsert(id=c.id, first_name="B")
    assert (await sb.contacts.get(email="fresh@example.com")).first_name == "B"
    assert (await sb.contacts.get(id=c.id)).first_name == "B"


async def test_list_pages_filters_and_caps(sb: Switchboard) -> None:
    for i in range(7):
        await sb.contacts.upsert(email=f"p{i}@example.com", lists=["vip"] if i % 2 else [])
    everyone = [c.email async for c in sb.contacts.iter(page_size=3)]
    assert sorted(everyone) == sorted(f"p{i}@example.com" for i in range(7))
    assert len(set(everyone)) == 7
    vip = [c.email async for c in sb.contacts.iter(list="vip", page_size=2)]
    assert sorted(vip) == ["p1@example.com", "p3@example.com", "p5@example.com"]
    page = await sb.contacts.list(page_size=3)
    assert len(page.contacts) == 3
    assert page.next_page_token
    with pytest.raises(InvalidArgumentError) as info:
        await sb.contacts.list(page_size=1001)
    assert [v.field for v in info.value.field_violations] == ["page_size"]
    with pytest.raises(InvalidArgumentError):
        await sb.contacts.list(page_token="garbage!")
    with pytest.raises(InvalidArgumentError, match="different filters"):
        await sb.contacts.list(page_token=page.next_page_token, list="vip")


async def test_list_updated_after(sb: Switchboard) -> None:
    await sb.contacts.upsert(email="old@example.com")
    await asyncio.sleep(0.01)
    cut = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await sb.contacts.upsert(email="new@example.com")
    page = await sb.contacts.list(updated_after=cut)
    assert [c.email for c in page.contacts] == ["new@example.com"]
    # Strictly after: a contact changed at exactly that microsecond is not listed.
    at = page.contacts[0].updated_at
    assert [c.email for c in (await sb.contacts.list(updated_after=at)).contacts] == []
    before = at.ToDatetime(tzinfo=UTC) - timedelta(microseconds=1)
    again = await sb.contacts.list(updated_after=before)
    assert [c.email for c in again.contacts] == ["new@example.com"]


async def test_import_counts_unchanged_rows_apart_from_updated(sb: Switchboard) -> None:
    rows = [{"email": "same@example.com", "first_name": "Same"}, {"email": "up@example.com"}]
    first = await sb.contacts.import_([rows])
    again = await sb.contacts.import_(
        [[rows[0], {"email": "up@example.com", "first_name": "Changed"}]]
    )

    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    assert (again.received, again.created, again.updated, again.unchanged) == (2, 0, 1, 1)


async def test_import_reports_bad_rows_and_keeps_going(sb: Switchboard) -> None:
    await sb.contacts.upsert(email="existing@example.com", first_name="Old")
    batches = [
        [
            {"email": "i1@example.com"},
            {"email": "broken"},
            {"email": "existing@example.com", "first_name": "New"},
        ],
        [{"email": "i2@example.com", "phone": "nope"}, {"email": "i3@example.com"}],
        [{"first_name": "no email"}],
    ]
    summary = await sb.contacts.import_(batches)
    assert (summary.received, summary.created, summary.updated, summary.failed) == (6, 2, 1, 3)
    errors = {e.index: e for e in summary.errors}
    assert set(errors) == {1, 3, 5}
    assert errors[1].code == "INVALID_ARGUMENT"
    assert errors[1].key == "broken"
    assert [v.field for v in errors[3].field_violations] == ["phone"]
    assert (await sb.contacts.get(email="existing@example.com")).first_name == "New"
    assert (await sb.contacts.get(email="i3@example.com")).email == "i3@example.com"


async def test_delete_erases_and_tombstone_blocks_resurrection(sb: Switchboard, app: App) -> None:
    c = (
        await sb.contacts.upsert(email="erase@example.com", first_name="Eve", lists=["newsletter"])
    ).contact
    await sb.leads.record_activity(id=c.id, type="email_click")
    gone = await sb.contacts.delete(email="erase@example.com")
    assert gone.id == c.id
    assert gone.deleted_at.seconds > 0
    with pytest.raises(NotFoundError):
        await sb.contacts.get(id=c.id)
    with pytest.raises(NotFoundError):
        await sb.leads.get(id=c.id)
    with pytest.raises(FailedPreconditionError, match="erased"):
        await sb.contacts.upsert(email="ERASE@example.com", first_name="Eve again")
    again = await sb.contacts.delete(id=c.id)
    assert again.deleted_at == gone.deleted_at
    assert [c.email async for c in sb.contacts.iter(list="newsletter")] == []
    # No personal data is left in the store: not in the events, not in the tombstone.
    events = await app.store.read(lambda tx: tx.events(c.id))
    assert [t for t, _ in events][-1] == "contact.erased"
    assert all(b"erase@example.com" not in body and b"Eve" not in body for _, body in events)


async def test_delete_unknown_is_not_found(sb: Switchboard) -> None:
    with pytest.raises(NotFoundError):
        await sb.contacts.delete(email="never@example.com")


async def test_every_write_is_an_event(sb: Switchboard, app: App) -> None:
    c = (await sb.contacts.upsert(email="ev@example.com")).contact
    await sb.contacts.upsert(id=c.id, first_name="E")
    events = await events_of(app.store, c.id)
    assert [e.type for e in events] == ["contact.created", "contact.updated"]
    change = events[1].contact_changed
    assert (change.contact.id, change.contact.version, list(change.fields)) == (
        c.id,
        2,
        ["first_name"],
    )
    # The values are recorded (sealed with the contact's key, opened on reading).
    assert (change.contact.email, change.contact.first_name) == ("ev@example.com", "E")


async def test_idempotency_replays_and_refuses_a_different_request(
    sb: Switchboard, app: App
) -> None:
    first = await sb.contacts.upsert(email="idem@example.com", idempotency_key="k-1")
    again = await sb.contacts.upsert(email="idem@example.com", idempotency_key="k-1")
    assert again == first
    assert again.created
    events = await app.store.read(lambda tx: tx.events(first.contact.id))
    assert len(events) == 1
    with pytest.raises(FailedPreconditionError, match="idempotency key"):
        await sb.contacts.upsert(email="other@example.com", idempotency_key="k-1")


async def test_concurrent_duplicates_apply_once(sb: Switchboard, app: App) -> None:
    replies = await asyncio.gather(
        *(
            sb.contacts.upsert(email="race@example.com", first_name="R", idempotency_key="race-1")
            for _ in range(50)
        )
    )
    assert len({r.contact.id for r in replies}) == 1
    assert all(r.created for r in replies)
    events = await app.store.read(lambda tx: tx.events(replies[0].contact.id))
    assert len(events) == 1


async def test_erasure_reaches_connected_tools_and_old_runs(sb: Switchboard, app: App) -> None:
    signup = await sb.campaigns.trigger(
        "newsletter.signup", email="gdpr@example.com", contact={"consent": True}, wait=True
    )
    cid = signup.contact_id
    crm = app.store.connector_state("crm")
    assert await crm.get("contacts", cid) is not None
    await sb.contacts.delete(id=cid)
    # State in this database goes with the erasure itself; the run tells the tools.
    assert await crm.get("contacts", cid) is None
    erasures = await sb.campaigns.list_runs(contact_id=cid, event="contact.erased")
    assert len(erasures.runs) == 1
    finished = [r async for r in sb.campaigns.watch(erasures.runs[0].id, timeout=10)][-1]
    assert [(s.action, s.status) for s in finished.steps] == [
        ("contacts.erase", campaigns_pb2.STEP_STATUS_SUCCEEDED)
    ] * 2
    for run_id in (signup.id, finished.id):
        plan = await app.store.read(lambda tx, rid=run_id: tx.run_plan(rid))
        assert plan is not None
        assert plan.base["contact"]["id"] == cid
        assert "gdpr@example.com" not in plan.to_json()
