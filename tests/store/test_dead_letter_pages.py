"""Dead letters by connector: a page in id order with the cursor, on both stores; and
(SQLite) a page of a rare connector's letters costs the same however many others there are."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from switchboard.server.store.base import DeadLetter, WriteTx
from switchboard.server.store.select import AnyStore
from tests.store.vm_steps import vm_steps


def _letters(start: int, count: int, connector: Callable[[int], str]) -> Callable[[WriteTx], None]:
    def put(tx: WriteTx) -> None:
        for i in range(start, start + count):
            tx.add_dead_letter(
                DeadLetter(
                    f"dl_{i:06d}",
                    f"run_{i:06d}",
                    0,
                    connector(i),
                    "upsert",
                    f"c{i}",
                    f"k{i}",
                    "retries_exhausted",
                    5,
                    "503 from the vendor",
                    1_000 + i,
                )
            )

    return put


async def test_dead_letters_by_connector_page_in_id_order(any_store: AnyStore) -> None:
    await any_store.write(_letters(0, 40, lambda i: ("crm", "esp")[i % 2]))

    async def page(connector: str, after: str, size: int) -> list[str]:
        rows = await any_store.read(lambda tx: tx.list_dead_letters(connector, after, size))
        return [r.id for r in rows]

    assert await page("esp", "", 3) == ["dl_000001", "dl_000003", "dl_000005"]
    assert await page("esp", "dl_000005", 2) == ["dl_000007", "dl_000009"]
    assert await page("", "dl_000037", 5) == ["dl_000038", "dl_000039"]
    assert await page("sms", "", 5) == []


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_rare_connectors_page_does_not_walk_the_others(any_store: AnyStore) -> None:
    """It walked every letter in id order to find the rare connector's (10x the cost here)."""
    await any_store.write(_letters(0, 10, lambda i: "rare"))

    def cost(tx: WriteTx) -> int:
        steps, rows = vm_steps(tx, lambda: tx.list_dead_letters("rare", "", 51))
        assert len(rows) == 10
        return steps

    await any_store.write(_letters(10, 500, lambda i: "crm"))
    few = int(await any_store.write(cost))
    await any_store.write(_letters(510, 4500, lambda i: "crm"))
    many = int(await any_store.write(cost))
    assert many <= few * 1.5 + 5, (few, many)
