"""Audience campaigns in the store: the campaign, its cursor over members, and its runs.

Mixed into both stores' transaction classes, over their `_rows`. A chunk of runs and the
cursor past them commit together, and `campaign_runs` has one row per (campaign, contact):
a campaign resumed after a crash starts nobody twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switchboard.v1 import campaigns_pb2


@dataclass(frozen=True, slots=True)
class CampaignRow:
    """A campaign as stored: its message, where its walk over members stands, its rule."""

    campaign: campaigns_pb2.Campaign
    expression: str
    cursor: str
    walked: bool  # every member has been started


class AudienceQueries:
    """Campaign statements; the concrete class supplies `_rows`."""

    __slots__ = ()

    def _rows(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def put_campaign(self, campaign: campaigns_pb2.Campaign, expression: str) -> None:
        """Store a new campaign, its walk not begun."""
        self._rows(
            "INSERT INTO campaigns (id, expression, cursor, walked, started, data) "
            "VALUES (?, ?, '', 0, 0, ?)",
            (campaign.id, expression, campaign.SerializeToString()),
        )

    def campaign(self, campaign_id: str) -> CampaignRow | None:
        """One campaign, with `started` filled in."""
        rows = self._rows(
            "SELECT data, expression, cursor, walked, started FROM campaigns WHERE id = ?",
            (campaign_id,),
        )
        if not rows:
            return None
        data, expression, cursor, walked, started = rows[0]
        campaign = campaigns_pb2.Campaign.FromString(bytes(data))
        campaign.started = int(started)
        return CampaignRow(campaign, expression, cursor, bool(walked))

    def campaigns_walking(self, limit: int) -> list[str]:
        """Campaigns whose members are still being started, oldest first."""
        rows = self._rows("SELECT id FROM campaigns WHERE walked = 0 ORDER BY id LIMIT ?", (limit,))
        return [str(r[0]) for r in rows]

    def add_campaign_run(self, campaign_id: str, contact_id: str, run_id: str) -> None:
        """Record the run started for one member."""
        self._rows(
            "INSERT INTO campaign_runs (campaign_id, contact_id, run_id) VALUES (?, ?, ?)",
            (campaign_id, contact_id, run_id),
        )

    def advance_campaign(self, campaign_id: str, cursor: str, started: int, walked: bool) -> None:
        """Move the walk's cursor past the members just started."""
        self._rows(
            "UPDATE campaigns SET cursor = ?, started = started + ?, walked = ? WHERE id = ?",
            (cursor, started, int(walked), campaign_id),
        )

    def campaign_outcomes(self, campaign_id: str) -> dict[str, int]:
        """Runs of the campaign by outcome: pending, succeeded, skipped, failed."""
        counts = {"pending": 0, "succeeded": 0, "skipped": 0, "failed": 0}
        rows = self._rows(
            "SELECT r.status, r.data FROM campaign_runs c JOIN runs r ON r.id = c.run_id "
            "WHERE c.campaign_id = ?",
            (campaign_id,),
        )
        for status, data in rows:
            if status == campaigns_pb2.RUN_STATUS_FAILED:
                counts["failed"] += 1
            elif status == campaigns_pb2.RUN_STATUS_SUCCEEDED:
                steps = campaigns_pb2.Run.FromString(bytes(data)).steps
                every_skipped = all(s.status == campaigns_pb2.STEP_STATUS_SKIPPED for s in steps)
                counts["skipped" if steps and every_skipped else "succeeded"] += 1
            else:
                counts["pending"] += 1
        return counts
