"""The dispatcher: claims due outbox rows and delivers each step to its connector.

Delivery is at least once: a claim is a lease, so a step whose worker died is offered again
when the lease runs out, with the same idempotency key. Each connector has a guard
(`guard.py`): a retry policy (retryable failures wait in the outbox with full-jitter backoff
or the tool's Retry-After, up to the attempt cap), a circuit breaker, a concurrency limit
and a rate limit. A claim takes only what each connector may take now, so a slow or
failing connector holds its own slots and never the others'. A step that gives up uses its
fallback (a fixed result or another action), or fails and becomes a dead letter.

Steps for a batch-capable connector are coalesced into batch calls (`batching.py`): the
connector's concurrency and rate limits then count calls, not steps, and each step in a
batch still gets its own outcome, attempt count, retry, fallback or dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry import metrics, trace

from switchboard.server.cache.read_cache import ReadCache
from switchboard.server.common.timeutil import now_us
from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.config.sections import DispatchSettings
from switchboard.server.connectors.base import (
    BatchConnector,
    Connector,
    ItemOutcome,
    batch_limits,
)
from switchboard.server.dispatch.attempts import (
    AttemptTelemetry,
    call_connector,
    call_connector_batch,
)
from switchboard.server.dispatch.batching import BatchEntry, Coalescer, batch_entry
from switchboard.server.dispatch.consent import ConsentGate, run_contact_id
from switchboard.server.dispatch.guard import ConnectorGuard, build_guards
from switchboard.server.dispatch.limits.base import Lane, LaneOf, Limits, Ticket
from switchboard.server.dispatch.limits.build import LaneRule, specs_from
from switchboard.server.dispatch.limits.local import LocalLimits
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.retry import is_retryable
from switchboard.server.dispatch.run_metrics import RunMetrics
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from switchboard.server.rules.plan import PlanStep
from switchboard.server.runs.chunk_outcome import item_done, item_key, item_states, record_chunk
from switchboard.server.runs.outcome import Outcome, record
from switchboard.server.runs.sealed import is_sealed, open_payload, redact_sealed, seal_key
from switchboard.server.runs.sync import ERASED_SKIP
from switchboard.server.runs.sync_chunk import ITEMS, is_chunk, item_plan
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
        # Batch-capable connectors with a guard, and the most items one of their calls takes.
        self._batching = {
            name: (c, size)
            for name, c in connectors.items()
            if name in self._guards
            and isinstance(c, BatchConnector)
            and (size := max((batch_limits(c, a)[0] for a in c.actions), default=1)) > 1
        }
        self._coalescer = Coalescer(settings.batch_linger_ms / 1000, self._send_batch)
        # (connector, action) -> batch limits: a Protocol isinstance check per step costs
        # more than the rest of coalescing it.
        self._batch_sizes: dict[tuple[str, str], tuple[int, int | None]] = {}
        # Items of batches handed to a task that has not yet got the call's ticket: the
        # next claim must still count them against the connector.
        self._batch_waiting: dict[str, int] = {}
        self._wake_in_s: float | None = None
        #: Called on every `wake`: an api-role process forwards it to dispatch processes.
        self.wake_hooks: list[Callable[[], None]] = []
        # The key that opens an erasure run's sealed email, read on first need.
        self._seal_key: bytes | None = None

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
        for hook in self.wake_hooks:
            hook()

    def started(self, event: str) -> None:
        """A run of `event` was committed: count it and look for its first step now."""
        self._runs.started(event)
        self.wake()

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
        self._coalescer.flush_all()  # claimed steps go out within the grace period
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._limits.aclose()

    async def _run(self) -> None:
        while not self._stopping:
            more = False
            try:
                more = await self._claim_and_start()
            except Exception:
                log.exception("dispatcher poll failed; retrying")
            if not more:
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

    async def _claim_and_start(self) -> bool:
        """Claim due steps and start them; whether to claim again at once.

        Only a claim that filled its limit may have left due steps behind. One that came
        back short took everything due, so the next waits for a wake-up (a run started, a
        delivery done) or the poll: claiming again at once was a write transaction of its
        own that found nothing, after every claim (half of the claims under steady load).
        """
        free = self._settings.concurrency - len(self._tasks)
        if free <= 0:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            return True
        limit = min(free, self._settings.batch_size)
        unordered = frozenset(
            [WAIT_CONNECTOR, *(name for name, g in self._guards.items() if not g.ordered)]
        )
        now = now_us()
        lease = now + int(self._settings.lease_s * 1_000_000)

        batching = self._batching
        waiting = {name: self._batch_items_waiting(name) for name in batching}
        batch_items: list[OutboxItem] = []
        batch_cap = [0]  # the batch connectors' item limit of the claim

        def claim(tx: WriteTx, budgets: Mapping[str, int]) -> list[OutboxItem]:
            # Batch connectors are claimed apart, in the same transaction, and not returned:
            # their budgets count items (free calls x batch size), and their call takes its
            # one ticket when the batch goes out (`_deliver_batch`), not one per item.
            plain = dict(budgets) | dict.fromkeys(batching, 0)
            flt = ClaimFilter(plain, default_budget=limit, unordered=unordered)
            items = tx.claim_outbox(now, lease, limit, flt)
            per_item = {
                name: max(0, min(budgets.get(name, free), free) * size - waiting[name])
                for name, (_, size) in batching.items()
            }
            batch_limit = batch_cap[0] = sum(per_item.values())
            batch_flt = ClaimFilter(per_item, default_budget=0, unordered=unordered)
            # Assigned, not extended: a store may run this function again after a conflict.
            batch_items[:] = (
                tx.claim_outbox(now, lease, batch_limit, batch_flt) if batch_limit else []
            )
            return items

        # Budgets, the claim and each step's ticket (slot, rate token, quota) are taken
        # together, so the next claim, here or in another process, sees them gone.
        claimed = await self._limits.claim(self._store, claim, self._lane_of)
        self._wake_in_s = claimed.wake_in_s
        if self._seal_key is None and any(
            is_sealed(i.plan) for i in itertools.chain(batch_items, (i for i, _ in claimed.items))
        ):
            self._seal_key = await self._store.write(seal_key)
        for item, ticket in claimed.items:
            if is_chunk(item.plan):
                self._start_chunk(item, ticket)
            else:
                self._start(item, ticket)
        for item in batch_items:
            if is_chunk(item.plan):
                self._start_chunk(item, None)
            elif not self._coalesce(item):
                # A step the connector does not batch (its action, a wait): one call of its own.
                self._start(item, await self._limits.acquire(item.connector, self._lane_of(item)))
        self._coalescer.settle()
        filled = bool(batch_items) and len(batch_items) >= batch_cap[0]
        return len(claimed.items) >= limit or filled

    def _start(self, item: OutboxItem, ticket: Ticket | None) -> None:
        guard = self._guards.get(item.connector)
        if guard is not None and ticket is not None and ticket.ok:
            guard.in_flight += 1
        # In the trace of the call that started the run (none when telemetry is off).
        context = self._telemetry.task_context(item.traceparent)
        task = asyncio.create_task(self._deliver(item, guard, ticket), context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_chunk(self, item: OutboxItem, ticket: Ticket | None) -> None:
        """Deliver a chunk step: its calls take their own tickets, so the claim's goes back."""
        if ticket is not None and ticket.ok:
            self._limits.release(item.connector, ticket)
        context = self._telemetry.task_context(item.traceparent)
        task = asyncio.create_task(self._deliver_chunk(item), context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_chunk(self, item: OutboxItem) -> None:
        """Send the chunk step's unfinished items (in batch calls where the connector has
        them), then record every item's outcome in one commit."""
        try:
            run = await self._store.read(lambda tx: tx.run(item.run_id))
            states = item_states(run, item.step_index) if run is not None else {}
            items = [
                replace(
                    item,
                    plan=item_plan(item.plan, cid),
                    contact_id=cid,
                    idempotency_key=item_key(item, cid),
                    attempts=int((states.get(cid) or {}).get("attempts", 0)),
                )
                for cid in item.plan.base[ITEMS]
                if not item_done(states.get(cid))
            ]
            outcomes = await self._chunk_outcomes(item, items)
            now = now_us()
            done = await self._store.write(lambda tx: record_chunk(tx, item, outcomes, now))
        except Exception:
            log.exception("delivering chunk step %s of run %s failed", item.step_index, item.run_id)
            return
        if done is not None:
            self._runs.recorded(item, done, now)
            self._notifier.publish(done.id)
        for one in items:
            outcome = outcomes[one.contact_id]
            if outcome.status == StepStatus.STEP_STATUS_FAILED:
                _log_dead_letter(one, outcome)
            elif done is not None:
                await self._after_write_back(one, outcome)
        self.wake()

    async def _chunk_outcomes(
        self, chunk: OutboxItem, items: list[OutboxItem]
    ) -> dict[str, Outcome]:
        """Each item's outcome (by contact id): skipped when erased, else attempted."""
        outcomes: dict[str, Outcome] = {}
        live: list[OutboxItem] = []
        for one in items:
            if set(one.plan.base["contact"]) <= {"id"}:  # erasure reduced it to its id
                outcomes[one.contact_id] = Outcome(
                    StepStatus.STEP_STATUS_SKIPPED, one.attempts, skip_reason=ERASED_SKIP
                )
            else:
                live.append(one)
        guard = self._guards.get(chunk.connector)
        step = chunk.plan.steps[chunk.step_index]
        batching = self._batching.get(chunk.connector)
        max_items, max_bytes = batch_limits(batching[0], step.action) if batching else (1, None)
        if guard is None or max_items <= 1:
            done = await asyncio.gather(*(self._chunk_single(guard, one) for one in live))
            outcomes.update(zip((one.contact_id for one in live), done, strict=True))
            return outcomes
        entries = [
            batch_entry(one, self._payload(one, step.params), bool(max_bytes)) for one in live
        ]
        calls = await asyncio.gather(
            *(
                self._chunk_batch(guard, step.action, part)
                for part in _slices(entries, max_items, max_bytes)
            )
        )
        for part, got in calls:
            outcomes.update((e.item.contact_id, got[i]) for i, e in enumerate(part))
        return outcomes

    async def _chunk_single(self, guard: ConnectorGuard | None, item: OutboxItem) -> Outcome:
        """One item of a chunk step sent on its own, with its own ticket."""
        if guard is None:
            return await self._attempt(item, guard)
        ticket = await self._limits.acquire(guard.name, self._lane_of(item))
        if ticket.ok:
            guard.in_flight += 1
        try:
            return await self._attempt(item, guard, ticket)
        finally:
            if ticket.ok:
                guard.in_flight -= 1
                self._limits.release(guard.name, ticket)

    async def _chunk_batch(
        self, guard: ConnectorGuard, action: str, entries: list[BatchEntry]
    ) -> tuple[list[BatchEntry], dict[int, Outcome]]:
        """One batch call for part of a chunk step: the outcomes by entry index."""
        outcomes, live = await self._screen_batch(guard, entries)
        ticket: Ticket | None = None
        try:
            if live:
                ticket = await self._batch_ticket(guard, [entries[i] for i in live])
                await self._call_batch(guard, action, entries, live, ticket, outcomes)
        finally:
            if ticket is not None and ticket.ok:
                guard.in_flight -= 1
                self._limits.release(guard.name, ticket)
        return entries, outcomes

    def _batch_items_waiting(self, name: str) -> int:
        """Items of `name` claimed but not yet in a call that holds its ticket."""
        return self._coalescer.pending(name) + self._batch_waiting.get(name, 0)

    def _coalesce(self, item: OutboxItem) -> bool:
        """Put `item` in its open batch if its connector batches its action."""
        batching = self._batching.get(item.connector)
        if batching is None:
            return False
        step = item.plan.steps[item.step_index]
        key = (item.connector, step.action)
        sizes = self._batch_sizes.get(key)
        if sizes is None:
            sizes = self._batch_sizes[key] = batch_limits(batching[0], step.action)
        max_items, max_bytes = sizes
        if max_items <= 1 or step.wait is not None:
            return False
        # The same payload a single call gets (a sync step's field mapping included).
        payload = self._payload(item, step.params)
        entry = batch_entry(item, payload, count_bytes=bool(max_bytes))
        self._coalescer.add(item.connector, step.action, entry, max_items, max_bytes)
        return True

    def _send_batch(self, connector: str, action: str, entries: list[BatchEntry]) -> None:
        self._batch_waiting[connector] = self._batch_waiting.get(connector, 0) + len(entries)
        task = asyncio.create_task(self._deliver_batch(self._guards[connector], action, entries))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_batch(
        self, guard: ConnectorGuard, action: str, entries: list[BatchEntry]
    ) -> None:
        waiting = len(entries)  # counted by `_send_batch` until the call holds its ticket
        ticket: Ticket | None = None
        try:
            outcomes, live = await self._screen_batch(guard, entries)
            if live:
                ticket = await self._batch_ticket(guard, [entries[i] for i in live])
            self._batch_waiting[guard.name] -= waiting
            waiting = 0
            if ticket is not None:
                await self._call_batch(guard, action, entries, live, ticket, outcomes)
            if ticket is not None and ticket.ok:
                # Before the outcomes' write, so a shared backend's release can join its commit.
                held, ticket = ticket, None
                guard.in_flight -= 1
                self._limits.release(guard.name, held)
            now = now_us()
            ordered = [self._redacted(e.item, outcomes[i]) for i, e in enumerate(entries)]
            # One commit for the whole batch (group commit), not one per step.
            runs = await self._store.write(
                lambda tx: [
                    record(tx, e.item, o, now) for e, o in zip(entries, ordered, strict=True)
                ]
            )
        except Exception:
            log.exception("recording a batch of %d steps for %s failed", len(entries), guard.name)
            return
        finally:
            self._batch_waiting[guard.name] -= waiting
            if ticket is not None and ticket.ok:
                guard.in_flight -= 1
                self._limits.release(guard.name, ticket)
        for entry, outcome, run in zip(entries, ordered, runs, strict=True):
            self._recorded(entry.item, outcome, run, now)
            if run is not None:
                await self._after_write_back(entry.item, outcome)
        self.wake()

    async def _screen_batch(
        self, guard: ConnectorGuard, entries: list[BatchEntry]
    ) -> tuple[dict[int, Outcome], list[int]]:
        """Outcomes of the entries that skip the call (the contact's consent refuses it, or
        no attempt is left), and the indexes of those that go in it."""
        outcomes: dict[int, Outcome] = {}
        live: list[int] = []
        skips = await self._consent.skips(
            [(e.item, e.item.plan.steps[e.item.step_index]) for e in entries]
        )
        for i, (entry, skipped) in enumerate(zip(entries, skips, strict=True)):
            item = entry.item
            if skipped is not None:
                outcomes[i] = skipped
            elif item.attempts >= guard.policy.max_attempts:
                step = item.plan.steps[item.step_index]
                outcomes[i] = await self._give_up(
                    item, step, item.attempts, _interrupted(item, guard), "retries_exhausted"
                )
            else:
                live.append(i)
        return outcomes, live

    async def _batch_ticket(self, guard: ConnectorGuard, entries: list[BatchEntry]) -> Ticket:
        """The one ticket of a batch call: one slot, one rate token, one unit of quota."""
        lanes = {self._lane_of(e.item) for e in entries}
        lane: Lane = "interactive" if "interactive" in lanes else "bulk"
        ticket = await self._limits.acquire(guard.name, lane)
        if ticket.ok:
            guard.in_flight += 1
        return ticket

    async def _call_batch(
        self,
        guard: ConnectorGuard,
        action: str,
        entries: list[BatchEntry],
        live: list[int],
        ticket: Ticket,
        outcomes: dict[int, Outcome],
    ) -> None:
        """Fill in the outcomes of the `live` entries: held, or from one batch call."""
        held: tuple[str, float] | None = None
        if not ticket.ok:
            # Refused (another process took the last slot, the daily quota is used up, the
            # circuit is open): not an attempt, the steps wait.
            held = (ticket.reason, ticket.retry_in_s)
        elif not self._limits.admit(guard.name, ticket):
            held = ("circuit open", guard.breaker.reopens_in_s())
        if held is not None:
            for i in live:
                outcomes[i] = self._held(entries[i].item, guard, *held)
            return
        if ticket.delay_s:
            await asyncio.sleep(ticket.delay_s)
        results = await self._through_batch(guard, action, [entries[i] for i in live], ticket)
        failed: list[tuple[int, Exception]] = []
        for i, result in zip(live, results, strict=True):
            if isinstance(result, Exception):
                failed.append((i, result))
                continue
            attempt = entries[i].item.attempts + 1
            outcomes[i] = Outcome(StepStatus.STEP_STATUS_SUCCEEDED, attempt, result=result)
        # Failures may call a fallback each: those calls go out together.
        done = await asyncio.gather(
            *(self._failed_item(entries[i].item, guard, exc) for i, exc in failed)
        )
        outcomes.update(zip((i for i, _ in failed), done, strict=True))

    async def _through_batch(
        self,
        guard: ConnectorGuard,
        action: str,
        entries: Sequence[BatchEntry],
        ticket: Ticket | None,
    ) -> list[ItemOutcome | Exception]:
        """One batch call; a raise fails every item alike. Tells the breaker how it went."""
        connector = self._batching[guard.name][0]
        report = self._limits.report
        try:
            results: list[ItemOutcome | Exception] = list(
                await call_connector_batch(
                    connector,
                    action,
                    [e.call for e in entries],
                    telemetry=self._telemetry,
                    timeout_s=self._connector_settings[guard.name].timeout_s,
                )
            )
        except asyncio.CancelledError:
            report(guard.name, False, ticket)  # frees a half-open probe; the rows are re-offered
            raise
        except Exception as exc:
            report(guard.name, not is_retryable(exc), ticket)
            return [exc] * len(entries)
        # The tool answered; only a call in which every item failed transiently counts
        # against it, as a failed single call would.
        all_transient = all(isinstance(r, Exception) and is_retryable(r) for r in results)
        report(guard.name, not all_transient, ticket)
        return results

    async def _failed_item(
        self, item: OutboxItem, guard: ConnectorGuard, exc: Exception
    ) -> Outcome:
        step = item.plan.steps[item.step_index]
        return await self._failed(item, step, guard, item.attempts + 1, exc)

    def _recorded(
        self, item: OutboxItem, outcome: Outcome, run: campaigns_pb2.Run | None, now: int
    ) -> None:
        """After the commit: metrics, the dead-letter log line, and the run's watchers."""
        if run is None:
            return
        self._runs.recorded(item, run, now)
        if outcome.status == StepStatus.STEP_STATUS_FAILED:
            _log_dead_letter(item, outcome)
        self._notifier.publish(run.id)

    async def _deliver(
        self, item: OutboxItem, guard: ConnectorGuard | None, ticket: Ticket | None
    ) -> None:
        holds = guard is not None and ticket is not None and ticket.ok
        try:
            if ticket is not None and ticket.delay_s:
                await asyncio.sleep(ticket.delay_s)
            outcome = self._redacted(item, await self._attempt(item, guard, ticket))
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
        self._recorded(item, outcome, run, now)
        if run is not None:
            await self._after_write_back(item, outcome)
        self.wake()

    def _payload(self, item: OutboxItem, params: Mapping[str, Any]) -> dict[str, Any]:
        """What the step's connector receives; an erasure run's sealed email opened."""
        payload = item.plan.step_payload(item.step_index, params)
        return open_payload(payload, self._seal_key, item.run_id)

    def _redacted(self, item: OutboxItem, outcome: Outcome) -> Outcome:
        """An erasure step's error without the sealed email (a tool may quote it back)."""
        if not outcome.error or self._seal_key is None or not is_sealed(item.plan):
            return outcome
        try:
            error = redact_sealed(outcome.error, item.plan, self._seal_key)
        except ValueError:
            error = "(the tool's message is withheld: it may quote the erased contact)"
        return replace(outcome, error=error)

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
            error = _interrupted(item, guard)
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
        payload = self._payload(item, params)
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


def _slices(
    entries: list[BatchEntry], max_items: int, max_bytes: int | None
) -> list[list[BatchEntry]]:
    """`entries` cut into batch calls of at most `max_items` items and `max_bytes` bytes."""
    parts: list[list[BatchEntry]] = [[]]
    size = 0
    for entry in entries:
        full = len(parts[-1]) >= max_items or (max_bytes and size + entry.size > max_bytes)
        if parts[-1] and full:
            parts.append([])
            size = 0
        parts[-1].append(entry)
        size += entry.size
    return [p for p in parts if p]


def _interrupted(item: OutboxItem, guard: ConnectorGuard) -> str:
    # The claim that started the last allowed attempt counted it, then the server stopped
    # before its outcome was recorded: the budget is spent.
    return (
        f"attempt {item.attempts} of {guard.policy.max_attempts} was interrupted "
        "(the server stopped during it); not tried again"
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
