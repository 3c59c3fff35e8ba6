"""Segments through real gRPC calls, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.v1 import segments_pb2, segments_pb2_grpc

StartApp = Callable[..., Awaitable[App]]


async def _seed(sb: Switchboard) -> dict[str, str]:
    """Four contacts: two French buyers (one frequent), a German buyer, a cart abandoner."""
    ids: dict[str, str] = {}
    people: list[tuple[str, str, list[str], dict[str, str]]] = [
        ("fr-frequent", "FR", ["vip"], {"plan": "pro"}),
        ("fr-once", "FR", [], {}),
        ("de-frequent", "DE", ["vip"], {"plan": "free"}),
        ("carts", "FR", [], {}),
    ]
    for name, country, lists, attrs in people:
        resp = await sb.contacts.upsert(
            email=f"{name}@example.com", country=country, lists=lists, attributes=attrs
        )
        ids[name] = resp.contact.id
    now = datetime.now(UTC)
    for name, purchases in (("fr-frequent", 6), ("fr-once", 1), ("de-frequent", 7)):
        for n in range(purchases):
            await sb.leads.record_activity(
                id=ids[name], type="purchase", value=20.0, occurred_at=now - timedelta(days=n)
            )
    # An old purchase: outside the 90-day window, inside the 365-day one.
    await sb.leads.record_activity(
        id=ids["fr-once"], type="purchase", value=50.0, occurred_at=now - timedelta(days=200)
    )
    await sb.leads.record_activity(id=ids["carts"], type="add_to_cart")
    return ids


async def _members(stub: Any, name: str, page_size: int = 1) -> list[str]:
    out: list[str] = []
    token = ""
    while True:
        resp = await stub.ListSegmentMembers(
            segments_pb2.ListSegmentMembersRequest(name=name, page_size=page_size, page_token=token)
        )
        out += [c.email for c in resp.contacts]
        token = resp.next_page_token
        if not token:
            return out


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param('purchases_90d > 5 && country == "FR"', ["fr-frequent"], id="brief-example"),
        pytest.param("purchases_90d > 5", ["de-frequent", "fr-frequent"], id="window"),
        pytest.param("purchases_365d == 2 && amount_365d == 70.0", ["fr-once"], id="year"),
        pytest.param('"vip" in lists && attributes.plan == "pro"', ["fr-frequent"], id="lists"),
        pytest.param("cart_without_order", ["carts"], id="cart"),
        pytest.param('!has(attributes.plan) && country in ["FR"]', ["carts", "fr-once"], id="has"),
        pytest.param("average_basket > 25.0", ["fr-once"], id="basket"),
    ],
)
async def test_count_and_members_follow_the_expression(
    start_app: StartApp, database: dict[str, Any], expression: str, expected: list[str]
) -> None:
    app = await start_app(database=database)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        await _seed(sb)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = segments_pb2_grpc.SegmentsStub(ch)
        await stub.CreateSegment(
            segments_pb2.CreateSegmentRequest(
                segment=segments_pb2.Segment(name="s", expression=expression)
            )
        )
        count = await stub.CountSegment(segments_pb2.CountSegmentRequest(name="s"))
        members = await _members(stub, "s")
    assert count.count == len(expected)
    assert sorted(m.split("@")[0] for m in members) == expected


async def test_bad_expression_names_position_and_field(channel: grpc.aio.Channel) -> None:
    stub = segments_pb2_grpc.SegmentsStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateSegment(
            segments_pb2.CreateSegmentRequest(
                segment=segments_pb2.Segment(name="bad", expression="purchase_90d > 5")
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert 'unknown field "purchase_90d" at 1:1; known fields: country' in details
    assert "purchases_90d" in details
    with pytest.raises(grpc.aio.AioRpcError) as syntax:
        await stub.CreateSegment(
            segments_pb2.CreateSegmentRequest(
                segment=segments_pb2.Segment(name="bad", expression="country ==")
            )
        )
    assert syntax.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1:11" in (syntax.value.details() or "")


async def test_define_list_get_delete(channel: grpc.aio.Channel) -> None:
    stub = segments_pb2_grpc.SegmentsStub(channel)
    for name in ("b", "a", "c"):
        await stub.CreateSegment(
            segments_pb2.CreateSegmentRequest(
                segment=segments_pb2.Segment(name=name, expression="lead_score > 10")
            )
        )
    with pytest.raises(grpc.aio.AioRpcError) as dup:
        await stub.CreateSegment(
            segments_pb2.CreateSegmentRequest(
                segment=segments_pb2.Segment(name="a", expression="lead_score > 1")
            )
        )
    assert dup.value.code() == grpc.StatusCode.ALREADY_EXISTS
    first = await stub.ListSegments(segments_pb2.ListSegmentsRequest(page_size=2))
    second = await stub.ListSegments(
        segments_pb2.ListSegmentsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [s.name for s in (*first.segments, *second.segments)] == ["a", "b", "c"]
    assert not second.next_page_token
    got = await stub.GetSegment(segments_pb2.GetSegmentRequest(name="b"))
    assert got.segment.expression == "lead_score > 10"
    await stub.DeleteSegment(segments_pb2.DeleteSegmentRequest(name="b"))
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.GetSegment(segments_pb2.GetSegmentRequest(name="b"))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("expression", "counts"),
    [
        pytest.param("purchases_total > 0", (3, 2), id="columns"),
        pytest.param('has(attributes.plan) && attributes.plan != "x"', (2, 1), id="attributes"),
    ],
)
async def test_erased_contact_is_in_no_segment(
    app: App, sb: Switchboard, expression: str, counts: tuple[int, int]
) -> None:
    ids = await _seed(sb)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = segments_pb2_grpc.SegmentsStub(ch)
        await stub.CreateSegment(
            segments_pb2.CreateSegmentRequest(
                segment=segments_pb2.Segment(name="buyers", expression=expression)
            )
        )
        before = await stub.CountSegment(segments_pb2.CountSegmentRequest(name="buyers"))
        members_before = await _members(stub, "buyers", page_size=1)
        await sb.contacts.delete(id=ids["fr-frequent"])
        after = await stub.CountSegment(segments_pb2.CountSegmentRequest(name="buyers"))
        members = await _members(stub, "buyers", page_size=1)
    assert (before.count, after.count) == counts
    assert "fr-frequent@example.com" in members_before
    assert "fr-frequent@example.com" not in members
    assert len(members) == after.count


async def test_count_reflects_a_write_right_after_it(app: App, sb: Switchboard) -> None:
    """The column snapshot behind CountSegment catches up before answering: no staleness."""
    ids = await _seed(sb)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = segments_pb2_grpc.SegmentsStub(ch)
        await stub.CreateSegment(
            segments_pb2.CreateSegmentRequest(
                segment=segments_pb2.Segment(
                    name="vip-fr", expression='"vip" in lists && country == "FR"'
                )
            )
        )
        request = segments_pb2.CountSegmentRequest(name="vip-fr")
        counts = [(await stub.CountSegment(request)).count]
        await sb.contacts.upsert(email="new@example.com", country="FR", lists=["vip"])
        counts.append((await stub.CountSegment(request)).count)
        await sb.contacts.upsert(email="de-frequent@example.com", country="FR", lists=["vip"])
        counts.append((await stub.CountSegment(request)).count)
        await sb.contacts.upsert(email="fr-frequent@example.com", country="DE")
        counts.append((await stub.CountSegment(request)).count)
        await sb.contacts.delete(id=ids["de-frequent"])
        counts.append((await stub.CountSegment(request)).count)
    assert counts == [1, 2, 3, 2, 1]
