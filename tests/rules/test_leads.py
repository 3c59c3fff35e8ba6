"""Lead lifecycle rules without a server."""

from __future__ import annotations

import pytest

from switchboard.server.errors import FailedPrecondition
from switchboard.server.rules.leads import check_transition, status_name
from switchboard.v1 import leads_pb2

S = leads_pb2.LeadStatus


@pytest.mark.parametrize(
    ("current", "target"),
    [
        pytest.param(S.LEAD_STATUS_NEW, S.LEAD_STATUS_SQL, id="forward-skipping-mql"),
        pytest.param(S.LEAD_STATUS_OPPORTUNITY, S.LEAD_STATUS_LOST, id="lost-from-open"),
        pytest.param(S.LEAD_STATUS_LOST, S.LEAD_STATUS_NEW, id="reopen"),
        pytest.param(S.LEAD_STATUS_MQL, S.LEAD_STATUS_MQL, id="same"),
    ],
)
def test_allowed_transitions(current: int, target: int) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        pytest.param(S.LEAD_STATUS_SQL, S.LEAD_STATUS_MQL, id="backwards"),
        pytest.param(S.LEAD_STATUS_CUSTOMER, S.LEAD_STATUS_LOST, id="customer-is-not-lost"),
        pytest.param(S.LEAD_STATUS_LOST, S.LEAD_STATUS_SQL, id="reopen-only-as-new"),
    ],
)
def test_refused_transitions_say_what_is_allowed(current: int, target: int) -> None:
    with pytest.raises(FailedPrecondition, match="allowed: forward along"):
        check_transition(current, target)


def test_status_names_are_the_short_lower_case_form() -> None:
    assert status_name(S.LEAD_STATUS_OPPORTUNITY) == "opportunity"
