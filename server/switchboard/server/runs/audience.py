"""Start the runs of an audience campaign, one chunk of members per transaction."""

from __future__ import annotations

from collections.abc import Callable

from switchboard.server.config.flow import TriggerSettings
from switchboard.server.rules.segment_expr import parse
from switchboard.server.rules.segment_sql import Dialect, to_sql
from switchboard.server.runs.start import start_run
from switchboard.server.store.base import WriteTx


def start_chunk(
    tx: WriteTx,
    campaign_id: str,
    trigger_for: Callable[[str], TriggerSettings],
    dialect: Dialect,
    limit: int,
    now: int,
) -> int:
    """Start runs for the next `limit` members after the campaign's cursor; how many.

    The members are read, started and the cursor moved in the caller's one transaction, so
    a crash loses the whole chunk or none of it. A contact that already has a run of this
    campaign (which the cursor makes impossible) would fail the chunk, not run twice.
    """
    row = tx.campaign(campaign_id)
    if row is None or row.walked:
        return 0
    campaign = row.campaign
    where, params = to_sql(parse(row.expression), dialect)
    ids = tx.segment_member_ids(where, params, row.cursor, limit)
    trigger = trigger_for(campaign.event)
    started = 0
    for contact_id in ids:
        contact = tx.contact_by_id(contact_id)
        if contact is None:  # erased since it was selected, in this same snapshot: none
            continue
        run = start_run(
            tx,
            campaign.event,
            trigger,
            contact,
            campaign.attributes,
            now,
            started_by=campaign.started_by,
        )
        tx.add_campaign_run(campaign_id, contact_id, run.id)
        started += 1
    tx.advance_campaign(campaign_id, ids[-1] if ids else row.cursor, started, len(ids) < limit)
    return started
