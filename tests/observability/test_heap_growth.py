"""The heap growth diagnostic names the line that keeps allocations alive."""

from __future__ import annotations

import logging

import pytest

from switchboard.server.observability.heap_growth import HeapGrowth

_kept: list[bytes] = []


def _leak() -> None:
    _kept.extend(bytes(4096) + bytes([i % 256]) for i in range(500))  # the growing line


async def test_the_growing_line_tops_the_report(caplog: pytest.LogCaptureFixture) -> None:
    heap = HeapGrowth(interval_s=3600)  # reports are taken by hand below
    heap.start()
    try:
        assert heap.report() == []  # the baseline
        _leak()
        with caplog.at_level(logging.WARNING):
            top = heap.report()
        at, grew = top[0]
        assert "test_heap_growth.py" in at
        assert grew >= 500 * 4096
        assert any("heap growth" in r.getMessage() for r in caplog.records)
    finally:
        await heap.aclose()
        _kept.clear()
