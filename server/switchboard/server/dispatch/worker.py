"""The dispatcher: claims due outbox rows and delivers each step to its connector.

Delivery is at least once: a claim is a lease, so a step whose worker died is offered again
when the lease runs out, with the same idempotency key. Failures are retried with
exponential backoff and full jitter up to the connector's attempt cap; then the step's
fallback (a fixed result or another action) decides, or the step fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import Any

from switchboard.server.config import ConnectorSettings, DispatchSettings
from switchboard.server.connectors.base import Connector, InvokeContext
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.outcome import Outcome, record
from switchboard.server.errors import PermanentConnectorError
from switchboard.server.store.base import OutboxItem, Store
from switchboard.server.timeutil import now_us
from switchboard.v1 import campaigns_pb2

log = logging.getLogger(__name__)
StepStatus = campaigns_pb2.StepStatus


class Dispatcher:
    """Background worker delivering outbox steps; `wake()` after enqueuing for low latency."""

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        connector_settings: Mapping[str, ConnectorSettings],
        settings: DispatchSettings,
        notifier: RunNotifier,
    ) -> None:
        self._store = store
        self._connectors = connectors
        self._connector_settings = connector_settings
        self._settings = settings
        self._notifier = notifier
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin claiming and delivering in the background."""
        self._loop_task = asyncio.create_task(self._run(), name="dispatcher")

    def wake(self) -> None:
        """Look for due steps now rather than at the next poll."""
        self._wake.set()

    async def stop(self, grace_s: float) -> None:
        """Stop claiming; give in-flight deliveries `grace_s` to finish, then cancel them.

        A cancelled delivery stays in the outbox and is retried after its lease expires.
        """
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            claimed = 0
            try:
                claimed = await self._claim_and_start()
            except Exception:
                log.exception("dispatcher poll failed; retrying")
            if claimed == 0:
                # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancel
                # that arrives as the wake-up fires, and `stop` then waits on this loop forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.poll_interval_s):
                        await self._wake.wait()
                self._wake.clear()

    async def _claim_and_start(self) -> int:
        free = self._settings.concurrency - len(self._tasks)
        if free <= 0:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            return 1
        limit = min(free, self._settings.batch_size)
        now = now_us()
        lease = now + int(self._settings.lease_s * 1_000_000)
        items = await self._store.write(lambda tx: tx.claim_outbox(now, lease, limit))
        for item in items:
            task = asyncio.create_task(self._deliver(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            outcome = await self._attempt(item)
            run = await self._store.write(lambda tx: record(tx, item, outcome, now_us()))
        except Exception:
            log.exception("recording step %s of run %s failed", item.step_index, item.run_id)
            return
        if run is not None:
            self._notifier.publish(run.id)
            self.wake()

    async def _attempt(self, item: OutboxItem) -> Outcome:
        step = item.plan["steps"][item.step_index]
        attempt = item.attempts + 1
        try:
            result = await self._invoke(
                step["connector"], step["action"], step["params"], item, attempt
            )
            return Outcome(StepStatus.STEP_STATUS_SUCCEEDED, attempt, result=result)
        except PermanentConnectorError as exc:
            return await self._give_up(item, step, attempt, f"permanent: {exc}")
        except Exception as exc:
            error = _describe(exc)
            if attempt < self._max_attempts(step["connector"]):
                delay = self._backoff(attempt)
                log.info(
                    "step %s of run %s failed (%s); retry in %.2fs",
                    item.step_index,
                    item.run_id,
                    error,
                    delay,
                )
                return Outcome(
                    StepStatus.STEP_STATUS_RETRYING,
                    attempt,
                    error=error,
                    retry_at_us=now_us() + int(delay * 1_000_000),
                )
            return await self._give_up(item, step, attempt, f"{error} after {attempt} attempts")

    async def _give_up(
        self, item: OutboxItem, step: dict[str, Any], attempts: int, error: str
    ) -> Outcome:
        fallback = step.get("fallback")
        if not fallback:
            return Outcome(StepStatus.STEP_STATUS_FAILED, attempts, error=error)
        if fallback.get("result") is not None:
            return Outcome(
                StepStatus.STEP_STATUS_FALLBACK, attempts, result=fallback["result"], error=error
            )
        connector = fallback.get("connector") or step["connector"]
        try:
            result = await self._invoke(
                connector, fallback["action"], fallback.get("params", {}), item, 1
            )
        except Exception as exc:
            return Outcome(
                StepStatus.STEP_STATUS_FAILED,
                attempts,
                error=f"{error}; fallback failed: {_describe(exc)}",
            )
        return Outcome(StepStatus.STEP_STATUS_FALLBACK, attempts, result=result, error=error)

    async def _invoke(
        self, name: str, action: str, params: dict[str, Any], item: OutboxItem, attempt: int
    ) -> dict[str, Any]:
        connector = self._connectors.get(name)
        if connector is None:
            raise PermanentConnectorError(f"connector {name!r} is not configured")
        payload = {**item.plan["base"], "step": item.step_index, "params": params}
        ctx = InvokeContext(
            idempotency_key=item.idempotency_key,
            run_id=item.run_id,
            step_index=item.step_index,
            attempt=attempt,
            deadline_s=self._connector_settings[name].timeout_s,
        )
        return await asyncio.wait_for(
            connector.invoke(action, payload, ctx), self._connector_settings[name].timeout_s
        )

    def _max_attempts(self, name: str) -> int:
        configured = self._connector_settings.get(name)
        if configured is not None and configured.max_attempts is not None:
            return configured.max_attempts
        return self._settings.max_attempts

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many failed steps instead of synchronising them.
        ceiling = min(
            self._settings.max_backoff_s, self._settings.base_backoff_s * 2 ** (attempt - 1)
        )
        return random.uniform(0, ceiling)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
