"""InMemoryState: the ConnectorState contract, and isolation of stored values."""

from __future__ import annotations

import pytest

from switchboard.server.connectors.base import ConnectorState, StateTx
from switchboard.server.connectors.memory_state import InMemoryState


async def test_put_get_delete() -> None:
    state: ConnectorState = InMemoryState()

    await state.put("c", "k", {"n": 1})

    assert await state.get("c", "k") == {"n": 1}
    assert await state.get("other", "k") is None
    assert await state.delete("c", "k") is True
    assert await state.delete("c", "k") is False
    assert await state.get("c", "k") is None


async def test_values_are_copied_both_ways() -> None:
    state = InMemoryState()
    value = {"items": [1]}
    await state.put("c", "k", value)

    value["items"].append(2)
    fetched = await state.get("c", "k")
    assert fetched == {"items": [1]}
    fetched["items"].append(3)
    (scanned,) = await state.scan("c")
    scanned["items"].append(4)

    assert await state.get("c", "k") == {"items": [1]}


async def test_scan_filters_by_prefix_in_key_order_with_limit() -> None:
    state = InMemoryState()
    for key in ("b/2", "a/1", "b/1", "b/3"):
        await state.put("c", key, {"key": key})

    assert await state.scan("c", "b/") == [{"key": "b/1"}, {"key": "b/2"}, {"key": "b/3"}]
    assert await state.scan("c", "b/", limit=2) == [{"key": "b/1"}, {"key": "b/2"}]
    assert await state.scan("empty") == []


async def test_a_transaction_reads_its_own_writes_and_keeps_all_or_nothing() -> None:
    state = InMemoryState()
    await state.put("c", "gone", {"n": 0})

    def change(tx: StateTx) -> int | None:
        tx.put("c", "k", {"n": 1})
        tx.delete("c", "gone")
        seen = tx.get("c", "k")
        return None if seen is None or tx.get("c", "gone") is not None else seen["n"]

    def fail(tx: StateTx) -> None:
        tx.put("c", "k", {"n": 2})
        raise ValueError("no")

    assert await state.transaction(change) == 1
    with pytest.raises(ValueError, match="no"):
        await state.transaction(fail)
    assert await state.get("c", "k") == {"n": 1}
    assert await state.get("c", "gone") is None
