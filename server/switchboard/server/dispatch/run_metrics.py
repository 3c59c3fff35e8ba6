"""Marketing-level metrics: runs started and finished, steps by outcome, time to delivery.

Counted after the transaction that made the change committed, so a rolled-back write is
never counted and a duplicate delivery (already recorded) is counted once.
"""

from __future__ import annotations

from opentelemetry import metrics

from switchboard.server.common.timeutil import to_us
from switchboard.server.observability.telemetry import DELIVERY_BUCKETS
from switchboard.server.runs.outcome import TERMINAL_RUN
from switchboard.server.runs.waits import WAIT_CONNECTOR
from switchboard.server.store.base import OutboxItem
from switchboard.v1 import campaigns_pb2

StepStatus = campaigns_pb2.StepStatus
_STEP_DONE = {
    StepStatus.STEP_STATUS_SUCCEEDED: "succeeded",
    StepStatus.STEP_STATUS_FALLBACK: "fallback",
    StepStatus.STEP_STATUS_FAILED: "failed",
    StepStatus.STEP_STATUS_SKIPPED: "skipped",
}
_DELIVERED = (StepStatus.STEP_STATUS_SUCCEEDED, StepStatus.STEP_STATUS_FALLBACK)
_RUN_STATUS = {
    campaigns_pb2.RunStatus.RUN_STATUS_SUCCEEDED: "succeeded",
    campaigns_pb2.RunStatus.RUN_STATUS_FAILED: "failed",
}


class RunMetrics:
    """`switchboard.runs.started`, `switchboard.runs.finished`, `switchboard.steps` and
    `switchboard.delivery.duration`."""

    def __init__(self, meter: metrics.Meter) -> None:
        # With telemetry off, skip building attribute dicts for no-op instruments.
        self._active = not isinstance(meter, metrics.NoOpMeter)
        self._started = meter.create_counter(
            "switchboard.runs.started", unit="{run}", description="Runs accepted, by event."
        )
        self._finished = meter.create_counter(
            "switchboard.runs.finished",
            unit="{run}",
            description="Runs that ended, by event and status (succeeded or failed).",
        )
        self._steps = meter.create_counter(
            "switchboard.steps",
            unit="{step}",
            description="Steps that ended, by connector and status "
            "(succeeded, fallback, failed, skipped).",
        )
        self._delivery = meter.create_histogram(
            "switchboard.delivery.duration",
            unit="s",
            description="From accepting the call that started a run to delivering a step.",
            explicit_bucket_boundaries_advisory=DELIVERY_BUCKETS,
        )

    def started(self, event: str) -> None:
        """A run of `event` was accepted (its transaction committed)."""
        if self._active:
            self._started.add(1, {"event": event})

    def recorded(self, item: OutboxItem, run: campaigns_pb2.Run, now_us: int) -> None:
        """The outcome of `item` was committed on `run` (as it stands after the outcome)."""
        if not self._active:
            return
        step = run.steps[item.step_index]
        status = _STEP_DONE.get(step.status)
        if status is None:  # retrying or waiting: not an end
            return
        if item.connector != WAIT_CONNECTOR:  # a wait that timed out is no delivery
            self._steps.add(1, {"connector": step.connector, "status": status})
            if step.status in _DELIVERED:
                waited_s = max(0, now_us - to_us(run.created_at)) / 1e6
                self._delivery.record(waited_s, {"connector": step.connector, "event": run.event})
        # Ended by this outcome: `record` stamps the step and the run's end with one time.
        if run.status in TERMINAL_RUN and run.finished_at == step.updated_at:
            self._finished.add(1, {"event": run.event, "status": _RUN_STATUS[run.status]})
