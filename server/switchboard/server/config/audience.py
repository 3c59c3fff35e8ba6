"""Audience campaigns: how fast a trigger for a segment starts its members' runs."""

from __future__ import annotations

from pydantic import Field

from switchboard.server.config.base import FrozenModel


class AudienceSettings(FrozenModel):
    """The pace of audience campaigns (`TriggerCampaign` with a `segment`)."""

    chunk: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Runs started per transaction; the cursor over members is saved with each.",
    )
    runs_per_s: float = Field(
        default=2000.0,
        gt=0,
        description="At most this many runs started per second, per campaign, so a large "
        "segment does not flood the outbox ahead of other work.",
    )
    poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often an idle server looks for campaigns to continue (one started "
        "here is picked up at once; this finds those left by a stopped process).",
    )
