"""Audience campaigns: one trigger for every member of a segment, started at a pace.

`TriggerCampaign` with a `segment` records the campaign (idempotent by its key) and returns;
`AudienceTask` then walks the segment's members by contact id, starting one run per member
in chunks (`runs/audience.py`), each chunk committed with the cursor past it. Any process on
the database continues a walk a stopped one left, from the last committed cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import now_us, set_ts
from switchboard.server.config.audience import AudienceSettings
from switchboard.server.config.flow import TriggerSettings
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.domain.idempotency import write_once
from switchboard.server.domain.segments import SegmentService, check_name
from switchboard.server.errors import NotFound, SwitchboardError
from switchboard.server.rules.segment_sql import Dialect
from switchboard.server.rules.validation import Violations, check_id, check_idempotency_key
from switchboard.server.runs.audience import start_chunk
from switchboard.server.store.base import ReadTx, Store, WriteTx
from switchboard.server.store.event_log import actor_label, current_actor
from switchboard.v1 import campaigns_pb2

log = logging.getLogger(__name__)
_WATCH_POLL_S = 0.5


class AudienceService:
    """Campaigns over segments: accept, read, watch; `AudienceTask` does the walking."""

    def __init__(
        self,
        store: Store,
        segments: SegmentService,
        trigger_for: Callable[[str], TriggerSettings],
        dialect: Dialect,
        settings: AudienceSettings,
        dispatcher: Dispatcher,
    ) -> None:
        self._store = store
        self._segments = segments
        self._trigger_for = trigger_for
        self._dialect = dialect
        self._settings = settings
        self._dispatcher = dispatcher
        self.wake = asyncio.Event()  # set when a campaign is accepted here

    async def start(self, req: campaigns_pb2.TriggerCampaignRequest) -> campaigns_pb2.Campaign:
        """Record a campaign for `req.segment`; the same idempotency key returns the first."""
        v = Violations()
        check_name(v, req.segment, "segment")
        if req.contact.ByteSize():
            v.add("contact", "leave it empty with a segment: the segment names the contacts")
        if req.wait_for_completion:
            v.add("wait_for_completion", "is not supported with a segment; use WatchCampaign")
        check_idempotency_key(v, req.idempotency_key)
        v.raise_if_any()
        self._trigger_for(req.event)  # NOT_FOUND, naming the configured events
        segment = await self._segments.get(req.segment)
        audience = await self._segments.count(req.segment)

        def work(tx: WriteTx, now: int) -> tuple[campaigns_pb2.TriggerCampaignResponse, None]:
            campaign = campaigns_pb2.Campaign(
                id=new_id("g"),
                event=req.event,
                segment=req.segment,
                status=campaigns_pb2.CAMPAIGN_STATUS_STARTING,
                audience=audience,
                started_by=actor_label(current_actor()),  # `write_once` acts as the caller
            )
            campaign.attributes.CopyFrom(req.attributes)
            set_ts(campaign.created_at, now)
            tx.put_campaign(campaign, segment.expression)
            return campaigns_pb2.TriggerCampaignResponse(campaign=campaign), None

        resp, _ = await write_once(
            self._store,
            "TriggerCampaign",
            req,
            req.idempotency_key,
            campaigns_pb2.TriggerCampaignResponse,
            work,
            lambda r: "",
        )
        self.wake.set()
        return await self.get(resp.campaign.id)

    async def get(self, campaign_id: str) -> campaigns_pb2.Campaign:
        """The campaign with its counts now, or NOT_FOUND."""
        v = Violations()
        check_id(v, "id", campaign_id, "g", required=True)
        v.raise_if_any()

        def read(tx: ReadTx) -> campaigns_pb2.Campaign | None:
            row = tx.campaign(campaign_id)
            if row is None:
                return None
            campaign = row.campaign
            counts = tx.campaign_outcomes(campaign_id)
            not_started = 0 if row.walked else max(0, campaign.audience - campaign.started)
            campaign.pending = counts["pending"] + not_started
            campaign.succeeded = counts["succeeded"]
            campaign.skipped = counts["skipped"]
            campaign.failed = counts["failed"]
            if not row.walked:
                campaign.status = campaigns_pb2.CAMPAIGN_STATUS_STARTING
            elif counts["pending"]:
                campaign.status = campaigns_pb2.CAMPAIGN_STATUS_RUNNING
            else:
                campaign.status = campaigns_pb2.CAMPAIGN_STATUS_DONE
            return campaign

        found = await self._store.read(read)
        if found is None:
            raise NotFound(f"no campaign with id {campaign_id!r}")
        return found

    async def watch(self, campaign_id: str) -> AsyncIterator[campaigns_pb2.Campaign]:
        """The campaign now, then whenever its counts change, until it is DONE."""
        last: campaigns_pb2.Campaign | None = None
        while True:
            campaign = await self.get(campaign_id)
            if campaign != last:
                yield campaign
                last = campaign
            if campaign.status == campaigns_pb2.CAMPAIGN_STATUS_DONE:
                return
            await asyncio.sleep(_WATCH_POLL_S)

    async def step(self) -> int:
        """Start one chunk of runs for each campaign still walking; how many runs."""
        total = 0
        ids = await self._store.read(lambda tx: tx.campaigns_walking(100))
        if ids:
            await self._segments.roll()  # windows right as of today before members are read
        for campaign_id in ids:
            total += await self._chunk(campaign_id)
        return total

    async def _chunk(self, campaign_id: str) -> int:
        now = now_us()
        limit = self._settings.chunk

        def work(tx: WriteTx) -> tuple[int, str]:
            row = tx.campaign(campaign_id)
            started = start_chunk(tx, campaign_id, self._trigger_for, self._dialect, limit, now)
            return started, row.campaign.event if row else ""

        started, event = await self._store.write(work)
        for _ in range(started):
            self._dispatcher.started(event)
        return started


class AudienceTask:
    """Walks campaigns in the background at `runs_per_s`."""

    def __init__(self, audience: AudienceService, settings: AudienceSettings) -> None:
        self._audience = audience
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin walking (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="audience campaigns")

    async def stop(self) -> None:
        """Stop between chunks: a chunk's transaction either committed or never began."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        wake = self._audience.wake
        while True:
            wake.clear()
            try:
                started = await self._audience.step()
            except SwitchboardError as exc:  # e.g. a trigger removed from the configuration
                log.warning("audience campaign paused: %s", exc.message)
                started = 0
            if started:
                await asyncio.sleep(started / self._settings.runs_per_s)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self._settings.poll_interval_s)
