"""CEL wrapper and step conditions: compile errors name the position and the field."""

from __future__ import annotations

import pytest

from switchboard.server.rules.cel import CelError, CelEvalError, compile_expression, evaluate
from switchboard.server.rules.conditions import compile_condition, condition_variables, skip_reason
from switchboard.v1 import contacts_pb2, leads_pb2


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        pytest.param("contact.country ==", "syntax error at 1:", id="syntax"),
        pytest.param('country == "FR"', "unknown field 'country' at 1:1", id="unknown-name"),
        pytest.param(
            'attributes.plan == "pro" && contact.plan == "x"',
            "unknown field 'contact.plan' at 1:29",
            id="unknown-contact-field",
        ),
        pytest.param("lead.points > 3", "unknown field 'lead.points' at 1:1", id="unknown-lead"),
        pytest.param("  ", "the expression is empty", id="empty"),
    ],
)
def test_bad_conditions_name_position_and_field(expression: str, message: str) -> None:
    with pytest.raises(CelError, match=message.replace("(", r"\(")):
        compile_condition(expression)


def test_unknown_name_lists_the_fields() -> None:
    with pytest.raises(CelError) as info:
        compile_condition("score > 3")
    assert "fields: attributes, contact, lead, variant" in str(info.value)


def _contact() -> contacts_pb2.Contact:
    contact = contacts_pb2.Contact(id="c_1", email="a@example.com", country="FR", lists=["vip"])
    contact.attributes["plan"] = "pro"
    contact.consents["email_marketing"].opt_in = True
    return contact


def test_condition_sees_contact_lead_attributes_and_variant() -> None:
    lead = leads_pb2.Lead(score=80, grade=leads_pb2.LEAD_GRADE_A, status=leads_pb2.LEAD_STATUS_MQL)
    variables = condition_variables(_contact(), lead, {"amount": 120}, "b")
    expression = (
        'contact.country == "FR" && "vip" in contact.lists && contact.attributes.plan == "pro"'
        ' && contact.consents.email_marketing && lead.score >= 75 && lead.grade == "A"'
        ' && lead.status == "MQL" && attributes.amount > 100 && variant == "b"'
    )
    assert skip_reason(expression, variables) is None
    assert skip_reason("attributes.amount > 500", variables) == (
        "condition false: attributes.amount > 500"
    )


def test_a_missing_entry_or_a_non_boolean_skips_with_the_reason() -> None:
    variables = condition_variables(None, None, {}, "")
    missing = skip_reason('contact.attributes.plan == "pro"', variables)
    assert missing is not None
    assert "no entry 'plan'" in missing
    assert (
        skip_reason('has(contact.attributes.plan) && contact.attributes.plan == "pro"', variables)
        is not None
    )
    not_bool = skip_reason("lead.score", variables)
    assert not_bool is not None
    assert "not true or false" in not_bool


def test_evaluate_raises_its_own_error() -> None:
    program = compile_expression("x / y > 1", {"x", "y"})
    assert evaluate(program, {"x": 4, "y": 2}) is True
    with pytest.raises(CelEvalError, match="division by zero"):
        evaluate(program, {"x": 1, "y": 0})
