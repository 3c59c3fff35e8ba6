"""The import pipeline against `FakeSwitchboard`: parts, streams, retries, error indexes."""

from __future__ import annotations

import grpc
import pytest

from switchboard.client import InvalidArgumentError
from switchboard.client.cli._common import Connection
from switchboard.client.cli.importer import Counts, import_parts, parts
from switchboard.client.cli.rows import Row
from switchboard.client.testing import FakeSwitchboard


def _rows(count: int, bad: frozenset[int] = frozenset()) -> list[Row]:
    return [
        Row(i + 1, {}, {"email": f"bad-{i}" if i in bad else f"r{i}@example.com"}, None)
        for i in range(count)
    ]


async def test_parts_in_flight_add_up_and_keep_row_indexes() -> None:
    counts = Counts()
    rows = _rows(95, bad=frozenset({3, 50, 94}))
    async with FakeSwitchboard() as fake:
        totals = await import_parts(
            Connection(fake.target, None, 10.0),
            parts(rows, batch_size=10, part_rows=20, counts=counts),
            streams=3,
        )

    assert (totals.received, totals.created, totals.failed) == (95, 92, 3)
    assert sorted(totals.errors) == [3, 50, 94]
    assert len(fake.requests("ImportContacts")) == 5  # parts of 20 rows (the last of 15)
    assert counts.sent == 95


async def test_a_part_answered_unavailable_is_sent_again() -> None:
    async with FakeSwitchboard() as fake:
        # The channel itself retries UNAVAILABLE 3 times (4 attempts): fail one more.
        fake.fail("ImportContacts", grpc.StatusCode.UNAVAILABLE, times=5)
        totals = await import_parts(
            Connection(fake.target, None, 10.0),
            parts(_rows(40), batch_size=10, part_rows=20, counts=Counts()),
            streams=1,
        )

    assert totals.retried == 1
    assert (totals.received, totals.created) == (40, 40)
    assert len(fake.contacts) == 40


async def test_other_errors_stop_the_import() -> None:
    async with FakeSwitchboard() as fake:
        fake.fail("ImportContacts", grpc.StatusCode.INVALID_ARGUMENT, "too big", times=10)
        with pytest.raises(InvalidArgumentError, match="too big"):
            await import_parts(
                Connection(fake.target, None, 10.0),
                parts(_rows(100), batch_size=10, part_rows=20, counts=Counts()),
                streams=2,
            )

    assert len(fake.requests("ImportContacts")) < 5  # it did not go on sending every part
