"""Observable gauges read when metrics are collected: outbox backlog, the store's bulk
backlog, dead letters, breaker states, the cache hit ratio, and ScoreLead's steady answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from switchboard.server.cache.read_cache import ReadCache
from switchboard.server.cache.steady_scores import SteadyScores
from switchboard.server.common.timeutil import now_us
from switchboard.server.dispatch.guard import ConnectorGuard
from switchboard.server.store.select import AnyStore

log = logging.getLogger(__name__)


# Breaker state as a number, so dashboards can plot and alert on it.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


def register_gauges(
    meter: metrics.Meter,
    store: AnyStore,
    cache: ReadCache,
    guards: Mapping[str, ConnectorGuard] | None = None,
    circuit: Callable[[str], str] | None = None,
    steady: SteadyScores | None = None,
) -> None:
    """Outbox depth and oldest wait, dead letters, breaker states, the cache counters, and
    the ScoreLead calls answered from `steady` (the leads whose score holds).

    `circuit` reads a connector's breaker state (the shared one when limits are shared);
    without it, each guard's own breaker.
    """

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
        "switchboard.store.bulk_backlog",
        [lambda _: [Observation(store.bulk_backlog_s())]],
        unit="s",
        description="About how long a bulk write queued now in this process would wait "
        "(imports are refused past limits.import_backlog_s).",
    )
    meter.create_observable_gauge(
        "switchboard.cache.hit_ratio", [hit_ratio], description="Cache hits / lookups."
    )

    def dead_letters(_: CallbackOptions) -> Iterable[Observation]:
        try:
            return [Observation(store.dead_letter_count())]
        except Exception:  # a metric must never break collection
            log.warning("dead-letter count unavailable", exc_info=True)
            return []

    def breakers(_: CallbackOptions) -> Iterable[Observation]:
        def state(name: str, guard: ConnectorGuard) -> str:
            return circuit(name) if circuit is not None else guard.breaker.state

        return [
            Observation(BREAKER_STATES[state(name, guard)], {"connector": name})
            for name, guard in (guards or {}).items()
        ]

    meter.create_observable_gauge(
        "switchboard.dead_letters",
        [dead_letters],
        unit="{step}",
        description="Dead letters waiting for an operator.",
    )
    meter.create_observable_gauge(
        "switchboard.connector.breaker_state",
        [breakers],
        description="Circuit breaker per connector: 0 closed, 1 half-open, 2 open.",
    )
    meter.create_observable_counter(
        "switchboard.cache.hits", [lambda _: [Observation(cache.hits)]], unit="{lookup}"
    )
    meter.create_observable_counter(
        "switchboard.cache.misses", [lambda _: [Observation(cache.misses)]], unit="{lookup}"
    )
    if steady is not None:
        meter.create_observable_counter(
            "switchboard.leads.steady_answers",
            [lambda _: [Observation(steady.answered)]],
            unit="{call}",
            description="ScoreLead calls answered without running the rules: the lead's "
            "cached inputs were found to hold its stored score before (docs/caching.md).",
        )
