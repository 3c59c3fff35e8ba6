"""Checking a step's `when` condition as the step becomes due, inside the run's transaction.

Checked when the step is queued (at the run's start for the first step, when the step
before it ends for the others), not once at the run's start: a condition such as
`contact.consents.email_marketing` or `lead.grade == "A"` must see what earlier steps and
calls made of the contact meanwhile. Reading the contact and lead costs two indexed lookups,
and only for steps that have a condition.
"""

from __future__ import annotations

import logging
from typing import Any

from switchboard.server.rules.conditions import condition_variables, skip_reason
from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import WriteTx
from switchboard.v1 import campaigns_pb2

log = logging.getLogger(__name__)


def condition_skip(tx: WriteTx, run: campaigns_pb2.Run, plan: Plan, index: int) -> str | None:
    """Why step `index` is skipped by its condition, or None when it has none or it holds."""
    expression = plan.steps[index].when
    if not expression:
        return None
    contact = tx.contact_by_id(run.contact_id) if run.contact_id else None
    lead = tx.lead(run.contact_id) if run.contact_id else None
    attributes: Any = plan.base.get("attributes") or {}
    variant = str(plan.base.get("variant") or "")
    reason = skip_reason(expression, condition_variables(contact, lead, attributes, variant))
    if reason is not None:
        log.info(
            "step %d of run %s skipped: %s",
            index,
            run.id,
            reason,
            extra={"fields": {"run_id": run.id, "step": index, "reason": reason}},
        )
    return reason
