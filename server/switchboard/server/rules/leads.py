"""Pure lead rules: the status lifecycle and turning a score result into a `Lead`."""

from __future__ import annotations

from typing import cast

from switchboard.server.common.timeutil import set_ts
from switchboard.server.errors import FailedPrecondition
from switchboard.server.rules.scoring import ScoreResult
from switchboard.v1 import leads_pb2

Status = leads_pb2.LeadStatus
_ORDER: list[int] = [
    Status.LEAD_STATUS_NEW,
    Status.LEAD_STATUS_MQL,
    Status.LEAD_STATUS_SQL,
    Status.LEAD_STATUS_OPPORTUNITY,
    Status.LEAD_STATUS_CUSTOMER,
]
_GRADES = {
    "A": leads_pb2.LEAD_GRADE_A,
    "B": leads_pb2.LEAD_GRADE_B,
    "C": leads_pb2.LEAD_GRADE_C,
    "D": leads_pb2.LEAD_GRADE_D,
}


def status_name(status: int) -> str:
    """`LEAD_STATUS_MQL` → `mql`, the form scoring rules and connectors use."""
    return (
        Status.Name(cast("leads_pb2.LeadStatus.ValueType", status))
        .removeprefix("LEAD_STATUS_")
        .lower()
    )


def check_transition(current: int, target: int) -> None:
    """Allow moving forward along NEW → MQL → SQL → OPPORTUNITY → CUSTOMER (steps may be
    skipped), LOST from any open status, and reopening LOST as NEW."""
    if current == target:
        return
    lost, customer = Status.LEAD_STATUS_LOST, Status.LEAD_STATUS_CUSTOMER
    allowed = (
        (current == lost and target == Status.LEAD_STATUS_NEW)
        or (target == lost and current != customer)
        or (current in _ORDER and target in _ORDER and _ORDER.index(target) > _ORDER.index(current))
    )
    if not allowed:
        raise FailedPrecondition(
            f"a lead cannot move from {status_name(current)} to {status_name(target)}; "
            "allowed: forward along new → mql → sql → opportunity → customer, "
            "lost from any open status, and lost → new"
        )


def apply_score(lead: leads_pb2.Lead, result: ScoreResult, activity_count: int, now: int) -> None:
    """Write a score result into `lead`."""
    lead.score = result.score
    lead.grade = _GRADES[result.grade]
    del lead.reasons[:]
    for reason in result.reasons:
        lead.reasons.add(rule=reason.rule, points=reason.points, description=reason.description)
    lead.activity_count = activity_count
    set_ts(lead.scored_at, now)


def holds(lead: leads_pb2.Lead, result: ScoreResult, activity_count: int) -> bool:
    """True when `lead` already holds this result and count: a re-score changed nothing but
    its time. Compares in place, without building a second `Lead`."""
    if (
        lead.score != result.score
        or lead.grade != _GRADES[result.grade]
        or lead.activity_count != activity_count
        or len(lead.reasons) != len(result.reasons)
    ):
        return False
    return all(
        have.rule == want.rule
        and have.points == want.points
        and have.description == want.description
        for have, want in zip(lead.reasons, result.reasons, strict=True)
    )
