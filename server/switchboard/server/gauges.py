"""Observable gauges read when metrics are collected: outbox backlog and cache hit ratio."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from switchboard.server.cache import ContactCache
from switchboard.server.store.sqlite import SqliteStore
from switchboard.server.timeutil import now_us

log = logging.getLogger(__name__)


def register_gauges(meter: metrics.Meter, store: SqliteStore, cache: ContactCache) -> None:
    """Outbox depth, the wait of its oldest due step, and the cache's hits, misses and ratio."""

    def outbox(index: int) -> Iterable[Observation]:
        try:
            stats = store.outbox_stats(now_us())
        except Exception:  # a metric must never break collection
            log.warning("outbox stats unavailable", exc_info=True)
            return []
        return [Observation(stats[index])]

    def depth(_: CallbackOptions) -> Iterable[Observation]:
        return outbox(0)

    def oldest_age(_: CallbackOptions) -> Iterable[Observation]:
        return outbox(1)

    def hit_ratio(_: CallbackOptions) -> Iterable[Observation]:
        total = cache.hits + cache.misses
        return [Observation(cache.hits / total if total else 0.0)]

    meter.create_observable_gauge(
        "switchboard.outbox.depth", [depth], unit="{step}", description="Steps waiting."
    )
    meter.create_observable_gauge(
        "switchboard.outbox.oldest_pending_age",
        [oldest_age],
        unit="s",
        description="How long the oldest pending step has been due.",
    )
    meter.create_observable_gauge(
        "switchboard.cache.hit_ratio", [hit_ratio], description="Cache hits / lookups."
    )
    meter.create_observable_counter(
        "switchboard.cache.hits", [lambda _: [Observation(cache.hits)]], unit="{lookup}"
    )
    meter.create_observable_counter(
        "switchboard.cache.misses", [lambda _: [Observation(cache.misses)]], unit="{lookup}"
    )
