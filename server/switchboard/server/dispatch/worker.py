"""The dispatcher: claims due outbox rows and delivers each step to its connector.

Delivery is at least once: a claim is a lease, so a step whose worker died is offered again
when the lease runs out, with the same idempotency key. Each connector has a guard
(`guard.py`): a retry policy (retryable failures wait in the outbox with full-jitter backoff
or the tool's Retry-After, up to the attempt cap), a circuit breaker, a concurrency limit
and a rate limit. A claim takes only what each connector may take now, so a slow or
failing connector holds its own slots and never the others'. A step that gives up uses its
fallback (a fixed result or another action), or fails and becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, trace

from switchboard.server.cache.read_cache import ReadCache
from switchboard.server.common.timeutil import now_us
from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.config.settings import DispatchSettings
from switchboard.server.connectors.base import Connector
from switchboard.server.dispatch.attempts import AttemptTelemetry, call_connector
from switchboard.server.dispatch.consent import ConsentGate, run_contact_id
from switchboard.server.dispatch.guard import ConnectorGuard, build_guards
from switchboard.server.dispatch.limits.base import LaneOf, Limits, Ticket
from switchboard.server.dispatch.limits.build import LaneRule, specs_from
from switchboard.server.dispatch.limits.local import LocalLimits
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.retry import is_retryable
from switchboard.server.dispatch.run_metrics import RunMetrics
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from switchboard.server.rules.plan import PlanStep
from switchboard.server.runs.outcome import Outcome, record
from switchboard.server.runs.waits import WAIT_CONNECTOR
from switchboard.server.store.base import ClaimFilter, OutboxItem, Store, WriteTx
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
        telemetry: AttemptTelemetry | None = None,
        runs: RunMetrics | None = None,
        guards: Mapping[str, ConnectorGuard] | None = None,
        limits: Limits | None = None,
        lane_of: LaneOf | None = None,
        cache: ReadCache | None = None,
    ) -> None:
        self._store = store
        self._cache = cache  # dropped entries after a sync step's write-back
        self._telemetry = telemetry or AttemptTelemetry(trace.NoOpTracer(), metrics.NoOpMeter(""))
        self._runs = runs or RunMetrics(metrics.NoOpMeter(""))
        self._connectors = connectors
        self._connector_settings = connector_settings
        self._settings = settings
        self._notifier = notifier
        self._guards = guards if guards is not None else build_guards(connector_settings, settings)
        # Rate, slots, breaker and quota: this process's own unless a shared backend is given.
        self._limits: Limits = limits or LocalLimits(
            self._guards, specs_from(connector_settings, settings, 0.2)
        )
        self._lane_of: LaneOf = lane_of or LaneRule(frozenset())
        self._consent = ConsentGate(store, connectors, connector_settings)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake_in_s: float | None = None

    @property
    def guards(self) -> Mapping[str, ConnectorGuard]:
        """Each connector's breaker, limits and retry policy (read-only use)."""
        return self._guards

    @property
    def limits(self) -> Limits:
        """The connectors' limits, shared with InvokeConnector calls."""
        return self._limits

    def start(self) -> None:
        """Begin claiming and delivering in the background."""
        self._stopping = False
        self._loop_task = asyncio.create_task(self._run(), name="dispatcher")

    def wake(self) -> None:
        """Look for due steps now rather than at the next poll."""
        self._wake.set()

    def started(self, event: str) -> None:
        """A run of `event` was committed: count it and look for its first step now."""
        self._runs.started(event)
        self._wake.set()

    async def stop(self, grace_s: float) -> None:
        """Stop claiming; give in-flight deliveries `grace_s` to finish, then cancel them.

        A cancelled delivery stays in the outbox and is retried after its lease expires.
        """
        # The flag as well as the cancel: on Python 3.11, asyncio.wait_for can swallow a
        # cancellation that arrives just as the awaited event fires (the wake-up after a
        # delivery), and the poll loop would then run on and this await never return.
        self._stopping = True
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
        await self._limits.aclose()

    async def _run(self) -> None:
        while not self._stopping:
            claimed = 0
            try:
                claimed = await self._claim_and_start()
            except Exception:
                log.exception("dispatcher poll failed; retrying")
            if claimed == 0:
                # Sooner than the poll when a rate token comes back earlier (shared limits:
                # another process's claims do not wake this one).
                wait = self._settings.poll_interval_s
                if self._wake_in_s is not None:
                    wait = max(0.001, min(wait, self._wake_in_s))
                # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancel
                # that arrives as the wake-up fires, and `stop` then waits on this loop forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                self._wake.clear()

    async def _claim_and_start(self) -> int:
        free = self._settings.concurrency - len(self._tasks)
        if free <= 0:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            return 1
        limit = min(free, self._settings.batch_size)
        unordered = frozenset(
            [WAIT_CONNECTOR, *(name for name, g in self._guards.items() if not g.ordered)]
        )
        now = now_us()
        lease = now + int(self._settings.lease_s * 1_000_000)

        def claim(tx: WriteTx, budgets: Mapping[str, int]) -> list[OutboxItem]:
            flt = ClaimFilter(dict(budgets), default_budget=limit, unordered=unordered)
            return tx.claim_outbox(now, lease, limit, flt)

        # Budgets, the claim and each step's ticket (slot, rate token, quota) are taken
        # together, so the next claim, here or in another process, sees them gone.
        claimed = await self._limits.claim(self._store, claim, self._lane_of)
        self._wake_in_s = claimed.wake_in_s
        for item, ticket in claimed.items:
            guard = self._guards.get(item.connector)
            if guard is not None and ticket is not None and ticket.ok:
                guard.in_flight += 1
            # In the trace of the call that started the run (none when telemetry is off).
            context = self._telemetry.task_context(item.traceparent)
            task = asyncio.create_task(self._deliver(item, guard, ticket), context=context)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed.items)

    async def _deliver(
        self, item: OutboxItem, guard: ConnectorGuard | None, ticket: Ticket | None
    ) -> None:
        holds = guard is not None and ticket is not None and ticket.ok
        try:
            if ticket is not None and ticket.delay_s:
                await asyncio.sleep(ticket.delay_s)
            outcome = await self._attempt(item, guard, ticket)
            if holds and guard is not None and ticket is not None:
                # Before the outcome's write, so a shared backend's release can join its commit.
                holds = False
                guard.in_flight -= 1
                self._limits.release(guard.name, ticket)
            now = now_us()
            run = await self._store.write(lambda tx: record(tx, item, outcome, now))
        except Exception:
            log.exception("recording step %s of run %s failed", item.step_index, item.run_id)
            return
        finally:
            if holds and guard is not None and ticket is not None:
                guard.in_flight -= 1
                self._limits.release(guard.name, ticket)
        if run is not None:
            self._runs.recorded(item, run, now)
            await self._after_write_back(item, outcome)
            if outcome.status == StepStatus.STEP_STATUS_FAILED:
                _log_dead_letter(item, outcome)
            self._notifier.publish(run.id)
        self.wake()

    async def _after_write_back(self, item: OutboxItem, outcome: Outcome) -> None:
        """A sync step's write-back may have changed the contact: drop its cached copies."""
        sync = item.plan.steps[item.step_index].sync
        if self._cache is None or sync is None or not sync.write_back:
            return
        if outcome.status == StepStatus.STEP_STATUS_SUCCEEDED:
            contact = item.plan.base.get("contact") or {}
            await self._cache.invalidate(item.contact_id, str(contact.get("email") or ""))

    async def _attempt(
        self, item: OutboxItem, guard: ConnectorGuard | None, ticket: Ticket | None = None
    ) -> Outcome:
        step = item.plan.steps[item.step_index]
        if item.connector == WAIT_CONNECTOR:
            branch = step.wait.timeout_branch if step.wait else "timeout"
            result = {"branch": branch, "timed_out": True}
            return Outcome(StepStatus.STEP_STATUS_SUCCEEDED, 1, result=result, branch=branch)
        if (skipped := await self._consent.skip(item, step)) is not None:
            return skipped
        if guard is None:
            error = f"permanent: connector {step.connector!r} is not configured"
            return await self._give_up(item, step, item.attempts + 1, error, "permanent_error")
        if item.attempts >= guard.policy.max_attempts:
            # The claim that started the last allowed attempt counted it, then the server
            # stopped before its outcome was recorded: the budget is spent.
            error = (
                f"attempt {item.attempts} of {guard.policy.max_attempts} was interrupted "
                "(the server stopped during it); not tried again"
            )
            return await self._give_up(item, step, item.attempts, error, "retries_exhausted")
        if ticket is not None and not ticket.ok:
            # Refused at the claim (another process took the last slot, the daily quota is
            # used up, the circuit opened): not an attempt, the step waits.
            return self._held(item, guard, ticket.reason, ticket.retry_in_s)
        if not self._limits.admit(guard.name, ticket):
            return self._held(item, guard, "circuit open", guard.breaker.reopens_in_s())
        attempt = item.attempts + 1
        try:
            result = await self._guarded_invoke(guard, step, item, attempt, ticket)
        except Exception as exc:
            return await self._failed(item, step, guard, attempt, exc)
        return Outcome(StepStatus.STEP_STATUS_SUCCEEDED, attempt, result=result)

    def _held(self, item: OutboxItem, guard: ConnectorGuard, why: str, wait_s: float) -> Outcome:
        """Not a failed attempt: the step waits, its attempt budget untouched."""
        delay = max(wait_s, self._settings.poll_interval_s)
        return Outcome(
            StepStatus.STEP_STATUS_RETRYING,
            item.attempts,
            error=f"{why} for connector {guard.name!r}; not called",
            retry_at_us=now_us() + int(delay * 1_000_000),
        )

    async def _guarded_invoke(
        self,
        guard: ConnectorGuard,
        step: PlanStep,
        item: OutboxItem,
        attempt: int,
        ticket: Ticket | None = None,
    ) -> dict[str, Any]:
        return await self._through(guard, step.action, step.params, item, attempt, ticket)

    async def _through(
        self,
        guard: ConnectorGuard,
        action: str,
        params: Mapping[str, Any],
        item: OutboxItem,
        attempt: int,
        ticket: Ticket | None = None,
    ) -> dict[str, Any]:
        """Invoke and tell the connector's breaker how it went."""
        report = self._limits.report
        try:
            result = await self._invoke(guard.name, action, params, item, attempt)
        except asyncio.CancelledError:
            report(guard.name, False, ticket)  # frees a half-open probe; the row is re-offered
            raise
        except Exception as exc:
            # A permanent error is an answer: the tool is up, so it does not trip the breaker.
            report(guard.name, not is_retryable(exc), ticket)
            raise
        report(guard.name, True, ticket)
        return result

    async def _failed(
        self,
        item: OutboxItem,
        step: PlanStep,
        guard: ConnectorGuard,
        attempt: int,
        exc: Exception,
    ) -> Outcome:
        error = _describe(exc)
        decision = guard.policy.decide(attempt, exc)
        if decision.retry:
            log.info(
                "step %s of run %s failed (%s); retry in %.2fs",
                item.step_index,
                item.run_id,
                error,
                decision.delay_s,
            )
            return Outcome(
                StepStatus.STEP_STATUS_RETRYING,
                attempt,
                error=error,
                retry_at_us=now_us() + int(decision.delay_s * 1_000_000),
            )
        if decision.reason == "permanent_error":
            error = f"permanent: {exc}"
        else:
            error = f"{error} after {attempt} attempts"
        return await self._give_up(item, step, attempt, error, decision.reason)

    async def _give_up(
        self, item: OutboxItem, step: PlanStep, attempts: int, error: str, reason: str
    ) -> Outcome:
        failed = Outcome(StepStatus.STEP_STATUS_FAILED, attempts, error=error, dead_reason=reason)
        fallback = step.fallback
        if fallback is None:
            return failed
        if fallback.result is not None:
            return Outcome(
                StepStatus.STEP_STATUS_FALLBACK, attempts, result=dict(fallback.result), error=error
            )
        connector = fallback.connector or step.connector
        guard = self._guards.get(connector)
        action = fallback.action or ""
        refused = await self._consent.refusal(connector, action, run_contact_id(item))
        if refused is not None:
            error = f"{error}; fallback {connector} {action} not sent: {refused}"
            return Outcome(StepStatus.STEP_STATUS_FAILED, attempts, error=error, dead_reason=reason)
        try:
            if guard is None:
                result = await self._invoke(connector, action, fallback.params, item, 1)
            elif self._limits.admit(connector, None):
                result = await self._through(guard, action, fallback.params, item, 1)
            else:
                raise RetryableConnectorError(f"circuit open for connector {connector!r}")
        except Exception as exc:
            return Outcome(
                StepStatus.STEP_STATUS_FAILED,
                attempts,
                error=f"{error}; fallback failed: {_describe(exc)}",
                dead_reason=reason,
            )
        return Outcome(StepStatus.STEP_STATUS_FALLBACK, attempts, result=result, error=error)

    async def _invoke(
        self, name: str, action: str, params: Mapping[str, Any], item: OutboxItem, attempt: int
    ) -> dict[str, Any]:
        connector = self._connectors.get(name)
        if connector is None:
            raise PermanentConnectorError(f"connector {name!r} is not configured")
        payload = item.plan.step_payload(item.step_index, params)
        return await call_connector(
            connector,
            action,
            payload,
            telemetry=self._telemetry,
            timeout_s=self._connector_settings[name].timeout_s,
            idempotency_key=item.idempotency_key,
            run_id=item.run_id,
            step_index=item.step_index,
            attempt=attempt,
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _log_dead_letter(item: OutboxItem, outcome: Outcome) -> None:
    """WARN once the dead letter is stored: a person has to look at it (redrive or drop)."""
    step = item.plan.steps[item.step_index]
    fields = {
        "run_id": item.run_id,
        "step": item.step_index,
        "connector": step.connector or item.connector,
        "action": step.action,
        "reason": outcome.dead_reason,
        "attempts": outcome.attempts,
    }
    log.warning(
        "step %d of run %s (%s %s) dead-lettered: %s after %d attempts: %s",
        item.step_index,
        item.run_id,
        fields["connector"],
        fields["action"],
        outcome.dead_reason,
        outcome.attempts,
        outcome.error,
        extra={"fields": fields},
    )
