"""Step conditions: a trigger step's CEL `when`, over the contact and the trigger's data.

The variables a condition sees (see docs/variants.md):

- `contact`: `id`, `email`, `country`, `lists` (names), `attributes` (map), `external_ids`
  (map), `opt_in` (the general consent) and `consents` (purpose -> opted in);
- `lead`: `score` (0-100), `grade` ("A".."D", "" before scoring), `status` ("NEW", "MQL",
  ...) - zeros when the contact was never scored;
- `attributes`: the TriggerCampaign request's attributes;
- `variant`: the run's A/B variant ("" when the trigger has none).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import cel

from switchboard.server.rules.cel import CelEvalError, compile_expression, evaluate
from switchboard.v1 import contacts_pb2, leads_pb2

NAMES = frozenset({"contact", "lead", "attributes", "variant"})
FIELDS = {
    "contact": frozenset(
        {"id", "email", "country", "lists", "attributes", "external_ids", "opt_in", "consents"}
    ),
    "lead": frozenset({"score", "grade", "status"}),
}


@functools.lru_cache(maxsize=1024)
def compile_condition(expression: str) -> cel.Program:
    """The compiled condition (cached: a run's plan holds its text, not the program).

    Raises:
        CelError: naming the position and the unknown field.
    """
    return compile_expression(expression, NAMES, FIELDS)


def condition_variables(
    contact: contacts_pb2.Contact | None,
    lead: leads_pb2.Lead | None,
    attributes: Mapping[str, Any],
    variant: str,
) -> dict[str, Any]:
    """What a condition is evaluated over (`contact` None: erased, every field empty)."""
    c = contact or contacts_pb2.Contact()
    grade = leads_pb2.LeadGrade.Name(lead.grade) if lead else "LEAD_GRADE_UNSPECIFIED"
    status = leads_pb2.LeadStatus.Name(lead.status) if lead else "LEAD_STATUS_UNSPECIFIED"
    return {
        "contact": {
            "id": c.id,
            "email": c.email,
            "country": c.country,
            "lists": list(c.lists),
            "attributes": dict(c.attributes),
            "external_ids": dict(c.external_ids),
            "opt_in": c.consent.opt_in,
            "consents": {purpose: r.opt_in for purpose, r in c.consents.items()},
        },
        "lead": {
            "score": lead.score if lead else 0,
            "grade": "" if grade.endswith("UNSPECIFIED") else grade.removeprefix("LEAD_GRADE_"),
            "status": "" if status.endswith("UNSPECIFIED") else status.removeprefix("LEAD_STATUS_"),
        },
        "attributes": dict(attributes),
        "variant": variant,
    }


def skip_reason(expression: str, variables: Mapping[str, Any]) -> str | None:
    """Why the step is skipped (its condition is false or cannot be evaluated), or None
    when it goes ahead."""
    try:
        value = evaluate(compile_condition(expression), variables)
    except CelEvalError as exc:
        return f"condition could not be evaluated ({exc}): {expression}"
    if not isinstance(value, bool):
        return f"condition is not true or false (it is {value!r}): {expression}"
    return None if value else f"condition false: {expression}"
