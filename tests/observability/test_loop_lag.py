"""The event-loop lag monitor: a blocked loop is measured and logged, gc pauses too."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from switchboard.server.observability.loop_lag import LoopLagMonitor


async def test_a_blocked_loop_is_logged_with_its_lag_and_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monitor = LoopLagMonitor(provider.get_meter("t"), interval_s=0.01, warn_ms=50)
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        with caplog.at_level(logging.WARNING):
            gc.collect()
            time.sleep(0.2)  # noqa: ASYNC251 - holds the loop, as a long synchronous step would
            await asyncio.sleep(0.05)
    finally:
        await monitor.aclose()
    lines = [r for r in caplog.records if "event loop lag" in r.getMessage()]
    assert lines, "no lag line for a loop held 200 ms"
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["lag_ms"] >= 150
    assert fields["gc_ms"] > 0
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"switchboard.event_loop.lag", "switchboard.gc.pause"} <= names
    provider.shutdown()


async def test_a_free_loop_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    provider = MeterProvider()
    monitor = LoopLagMonitor(provider.get_meter("t"), interval_s=0.01, warn_ms=500)
    monitor.start()
    with caplog.at_level(logging.WARNING):
        await asyncio.sleep(0.1)
    await monitor.aclose()
    assert not [r for r in caplog.records if "event loop lag" in r.getMessage()]
    assert gc.callbacks.count(monitor._on_gc) == 0  # removed on close
    provider.shutdown()


def test_a_collection_during_a_metrics_scrape_does_not_deadlock() -> None:
    # A gc callback runs wherever a collection starts, even inside the SDK's collect with its
    # locks held; recording the pause from there deadlocked that thread (a Prometheus scrape)
    # and, behind it, every call that recorded a metric.
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monitor = LoopLagMonitor(provider.get_meter("t"))
    gc.callbacks.append(monitor._on_gc)
    thresholds = gc.get_threshold()
    try:
        gc.collect()
        monitor.flush_pauses()  # the pause histogram has points, so collect aggregates it

        def scrape() -> None:
            for _ in range(200):
                reader.get_metrics_data()

        gc.set_threshold(1)  # a collection at nearly every allocation, inside collect too
        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        scraper.join(timeout=20)
        gc.set_threshold(*thresholds)
        assert not scraper.is_alive(), "the scrape deadlocked"
    finally:
        gc.set_threshold(*thresholds)
        gc.callbacks.remove(monitor._on_gc)
    monitor.flush_pauses()
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "switchboard.gc.pause" in names
