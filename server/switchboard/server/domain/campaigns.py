"""Campaign use-cases: trigger a run, read runs, wait for or watch a run."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from switchboard.server.cache.read_cache import ReadCache
from switchboard.server.common.timeutil import now_us, to_us
from switchboard.server.config.flow import StepSettings, TriggerSettings
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.domain.contacts import apply_upsert
from switchboard.server.domain.idempotency import write_once
from switchboard.server.domain.variants import check_variant
from switchboard.server.errors import NotFound
from switchboard.server.observability.telemetry import current_traceparent
from switchboard.server.rules import contacts as contact_rules
from switchboard.server.rules.paging import PageTokens
from switchboard.server.rules.validation import (
    MAX_KEY_NAME,
    Violations,
    check_id,
    check_idempotency_key,
    check_length,
    check_page_size,
    check_struct,
)
from switchboard.server.runs.outcome import TERMINAL_RUN
from switchboard.server.runs.resume import resume_waits
from switchboard.server.runs.start import start_run
from switchboard.server.store.base import RunFilter, Store, WriteTx
from switchboard.server.store.event_log import acting_as
from switchboard.v1 import campaigns_pb2, events_pb2

_EVENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Slow poll behind the in-process notifier: catches changes made by other processes.
_WATCH_POLL_S = 1.0
# Answer a waiting caller this long before its deadline, so the answer still arrives.
_DEADLINE_MARGIN_S = 0.05


class CampaignService:
    """Runs of configured triggers."""

    def __init__(
        self,
        store: Store,
        cache: ReadCache,
        triggers: Mapping[str, TriggerSettings],
        dispatcher: Dispatcher,
        notifier: RunNotifier,
        tokens: PageTokens,
    ) -> None:
        self._store = store
        self._cache = cache
        self._triggers = triggers
        self._dispatcher = dispatcher
        self._notifier = notifier
        self._tokens = tokens

    def trigger_for(self, event: str) -> TriggerSettings:
        """The configured trigger, or NOT_FOUND naming the configured ones."""
        trigger = self._triggers.get(event)
        if trigger is None:
            known = ", ".join(sorted(self._triggers)) or "none"
            raise NotFound(f"no trigger is configured for event {event!r} (configured: {known})")
        return trigger

    async def trigger(
        self, req: campaigns_pb2.TriggerCampaignRequest, time_left_s: float | None
    ) -> campaigns_pb2.Run:
        """Accept an event: upsert its contact, start the run, optionally wait for its end."""
        v = Violations()
        if not _EVENT.match(req.event):
            v.add("event", "is required: letters, digits, '.', '_' or '-', at most 128 characters")
        contact = contact_rules.normalize_contact(req.contact, v, "contact.")
        if not contact.id and not contact.email:
            v.add("contact", "set contact.id or contact.email")
        check_struct(v, "attributes", req.attributes)
        check_idempotency_key(v, req.idempotency_key)
        v.raise_if_any()
        trigger = self.trigger_for(req.event)
        check_variant(trigger, req.variant)

        traceparent = current_traceparent()

        def work(tx: WriteTx, now: int) -> tuple[campaigns_pb2.TriggerCampaignResponse, bool]:
            upserted = apply_upsert(tx, contact, now)
            run = start_run(
                tx,
                req.event,
                trigger,
                upserted.contact,
                req.attributes,
                now,
                traceparent=traceparent,
                variant=req.variant,
            )
            # A written contact's cache entries must go.
            return campaigns_pb2.TriggerCampaignResponse(run=run), upserted.changed

        resp, touched = await write_once(
            self._store,
            "TriggerCampaign",
            req,
            req.idempotency_key,
            campaigns_pb2.TriggerCampaignResponse,
            work,
            lambda r: r.run.contact_id,
        )
        run = resp.run
        if touched:
            await self._cache.invalidate(run.contact_id, contact.email)
        if touched is not None:  # None: a replayed key started nothing
            self._dispatcher.started(run.event)
        else:
            self._dispatcher.wake()
        if req.wait_for_completion:
            budget = None if time_left_s is None else max(0.0, time_left_s - _DEADLINE_MARGIN_S)
            return await self.wait(run.id, budget)
        return run

    async def resume(
        self, source: str, key: str, branch: str, event: dict[str, Any], msg_id: str
    ) -> list[str]:
        """End the waits of `source` parked on `key` with `branch`; return the run ids.

        Committed before it returns; a repeated `msg_id` resumes nothing new.
        """
        dedupe = f"webhook:{source}:{msg_id}:resume"
        # The tool that sent the webhook caused what it resumes.
        actor = events_pb2.Actor(kind="webhook", name=source)

        def work(tx: WriteTx) -> tuple[list[str], bool]:
            with acting_as(actor):
                return resume_waits(tx, source, key, branch, event, dedupe, now_us())

        resumed, _ = await self._store.write(work)
        for run_id in resumed:
            self._notifier.publish(run_id)
        self._dispatcher.wake()
        return resumed

    async def get_run(self, run_id: str) -> campaigns_pb2.Run:
        """One run, or NOT_FOUND."""
        v = Violations()
        check_id(v, "id", run_id, "r", required=True)
        v.raise_if_any()
        run = await self._store.read(lambda tx: tx.run(run_id), point=True)
        if run is None:
            raise NotFound(f"no run with id {run_id!r}")
        return run

    async def list_runs(self, req: campaigns_pb2.ListRunsRequest) -> campaigns_pb2.ListRunsResponse:
        """Runs newest first, filtered."""
        v = Violations()
        size = check_page_size(v, req.page_size, 50, 500)
        check_id(v, "contact_id", req.contact_id, "c", required=False)
        check_length(v, "event", req.event, MAX_KEY_NAME)
        flt = RunFilter(req.contact_id, req.event, req.status)
        scope = ("ListRuns", flt.contact_id, flt.event, flt.status)
        cursor = self._tokens.decode(req.page_token, scope, v)
        v.raise_if_any()
        runs = await self._store.read(lambda tx: tx.list_runs(flt, cursor, size + 1))
        resp = campaigns_pb2.ListRunsResponse(runs=runs[:size])
        if len(runs) > size:
            last = runs[size - 1]
            resp.next_page_token = self._tokens.encode((to_us(last.created_at), last.id), scope)
        return resp

    def list_triggers(
        self, req: campaigns_pb2.ListTriggersRequest
    ) -> campaigns_pb2.ListTriggersResponse:
        """The configured triggers (or the one of `req.event`), ordered by event name."""
        if req.event:
            v = Violations()
            check_length(v, "event", req.event, MAX_KEY_NAME)
            v.raise_if_any()
            self.trigger_for(req.event)  # NOT_FOUND, naming the configured events
            events = [req.event]
        else:
            events = sorted(self._triggers)
        return campaigns_pb2.ListTriggersResponse(
            triggers=[_trigger_message(event, self._triggers[event]) for event in events]
        )

    async def wait(self, run_id: str, budget_s: float | None) -> campaigns_pb2.Run:
        """The run once it ends, or as it stands when `budget_s` runs out."""
        run = await self.get_run(run_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(budget_s):
                async for run in self.watch(run_id):  # noqa: B007 - the last one is the answer
                    pass
        return run if run.status in TERMINAL_RUN else await self.get_run(run_id)

    async def watch(self, run_id: str) -> AsyncIterator[campaigns_pb2.Run]:
        """The run now, then after every change, until it ends."""
        with self._notifier.subscribe(run_id) as changed:
            last: campaigns_pb2.Run | None = None
            while True:
                changed.clear()
                run = await self.get_run(run_id)
                if run != last:
                    yield run
                    last = run
                if run.status in TERMINAL_RUN:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), _WATCH_POLL_S)


def _trigger_message(event: str, trigger: TriggerSettings) -> campaigns_pb2.Trigger:
    # Step params are left out: they may hold templates or references to secrets.
    return campaigns_pb2.Trigger(
        event=event,
        description=trigger.description,
        steps=[_step_message(index, step) for index, step in enumerate(trigger.steps)],
        variants=sorted(trigger.variants),
    )


def _step_message(index: int, step: StepSettings) -> campaigns_pb2.TriggerStep:
    message = campaigns_pb2.TriggerStep(
        index=index, connector=step.connector, action=step.action, when=step.when or ""
    )
    if step.fallback is not None:
        fallback = step.fallback
        message.fallback = (
            "result"
            if fallback.result is not None
            else f"{fallback.connector or step.connector}/{fallback.action}"
        )
    if step.wait is not None:
        message.wait_source = step.wait.source
        message.wait_branches.extend(sorted(step.wait.branches))
    return message
