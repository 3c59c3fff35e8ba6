"""Built-in connectors under concurrent calls: no lost updates, each key counted once.

Each test fires calls at once through a real server (`InvokeConnector`), so their state
reads and writes interleave as they do when the dispatcher delivers many steps together.
The payloads name made-up contacts, so the calls skip the consent check (tested in
`test_consent.py`): what is under test here is the adapters' state.
"""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.v1 import connectors_pb2

CALLS = 8


async def _invoke(
    sb: Switchboard, connector: str, action: str, payload: dict[str, Any], key: str = ""
) -> Struct:
    request = connectors_pb2.InvokeConnectorRequest(
        connector=connector, action=action, idempotency_key=key, skip_consent_check=True
    )
    request.payload.update(payload)
    return await sb.connectors.invoke(request=request)


async def _invoke_all(sb: Switchboard, connector: str, action: str, calls: list[Any]) -> list[Any]:
    return list(
        await asyncio.gather(
            *(_invoke(sb, connector, action, payload, key) for key, payload in calls)
        )
    )


async def test_concurrent_conversions_are_each_counted_once(sb: Switchboard) -> None:
    body = {"attributes": {"amount": 10}}
    # Each key twice, all at once: the duplicates race past InvokeConnector's replay check
    # (nothing is recorded yet), so the connector itself must count each key once.
    await _invoke_all(
        sb, "analytics", "conversions.track", [(f"k{i}", body) for i in range(1, CALLS + 1)] * 2
    )
    last = await _invoke(sb, "analytics", "conversions.track", body, "k9")
    assert last["conversions"] == CALLS + 1
    assert last["revenue"] == 10 * (CALLS + 1)


async def test_concurrent_events_are_each_counted_once(sb: Switchboard) -> None:
    body = {"params": {"name": "checkout"}}
    await _invoke_all(sb, "analytics", "events.track", [(f"e{i}", body) for i in range(CALLS)] * 2)
    last = await _invoke(sb, "analytics", "events.track", body)
    assert last["count"] == CALLS + 1


async def test_concurrent_purchases_of_one_contact_are_all_kept(sb: Switchboard) -> None:
    def order(i: int) -> dict[str, Any]:
        attrs = {"order_id": f"o{i}", "amount": 5, "items": [{"sku": "s1", "price": 5}]}
        return {"contact": {"id": "c_buyer"}, "attributes": attrs}

    await _invoke_all(sb, "crm", "purchases.record", [(f"p{i}", order(i)) for i in range(CALLS)])
    # A redelivered order (same order id, new key) replaces itself instead of adding up.
    last = await sb.connectors.invoke("crm", "purchases.record", payload=order(0))
    assert last["purchase_count"] == CALLS
    assert last["lifetime_value"] == 5 * CALLS


async def test_concurrent_subscriptions_of_one_contact_are_all_kept(
    sb: Switchboard, app: App
) -> None:
    contact = {"id": "c_reader", "consent": {"opt_in": True}}
    calls = [(f"s{i}", {"contact": contact, "params": {"list": f"l{i}"}}) for i in range(CALLS)]
    await _invoke_all(sb, "esp", "lists.subscribe", calls)
    stored = await app.store.read(lambda tx: tx.state_get("esp", "subscriptions", "c_reader"))
    assert stored == {"lists": sorted(f"l{i}" for i in range(CALLS))}


async def test_concurrent_purchases_raise_popularity_once_each(sb: Switchboard, app: App) -> None:
    def purchase(i: int) -> dict[str, Any]:
        return {"contact": {"id": f"c{i}"}, "attributes": {"items": [{"sku": "hot"}]}}

    calls = [(f"r{i}", purchase(i)) for i in range(CALLS)]
    await _invoke_all(sb, "recommendations", "suggestions.refresh", calls * 2)
    stored = await app.store.read(lambda tx: tx.state_get("recommendations", "popularity", "hot"))
    assert stored == {"sku": "hot", "count": CALLS}


async def test_concurrent_offers_shown_are_each_counted(sb: Switchboard, app: App) -> None:
    body = {"contact": {"id": "c_visitor"}, "params": {"segment": "newsletter"}}
    await _invoke_all(
        sb, "personalization", "offers.show", [(f"o{i}", body) for i in range(CALLS)] * 2
    )
    stored = await app.store.read(lambda tx: tx.state_get("personalization", "shown", "c_visitor"))
    assert stored is not None
    assert stored["times_shown"] == CALLS


async def test_concurrent_status_followups_start_once(sb: Switchboard, app: App) -> None:
    body = {"contact": {"id": "c_lead"}, "lead": {"status": "sql"}}
    results = await _invoke_all(
        sb, "automation", "followups.start", [(f"f{i}", body) for i in range(CALLS)]
    )
    started = [name for r in results for name in r["started"]]
    assert sorted(started) == ["sales.call_task", "sales.intro_email"]
