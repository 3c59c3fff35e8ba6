"""The erased person's email sealed in an erasure run's plan."""

from __future__ import annotations

import secrets

import pytest

from switchboard.server.rules.plan import Plan
from switchboard.server.runs.sealed import (
    SEALED_EMAIL,
    is_sealed,
    open_payload,
    seal,
    unseal,
    with_sealed_email,
)

KEY = secrets.token_bytes(32)


def test_a_sealed_email_opens_only_for_its_run_and_key() -> None:
    token = seal(KEY, "someone@example.com", "r1")
    assert "someone" not in token
    assert unseal(KEY, token, "r1") == "someone@example.com"
    with pytest.raises(ValueError, match="cannot be opened"):
        unseal(KEY, token, "r2")
    with pytest.raises(ValueError, match="cannot be opened"):
        unseal(secrets.token_bytes(32), token, "r1")


def test_the_payload_is_opened_and_the_plan_stays_sealed() -> None:
    plan = Plan({"contact": {"id": "c1", "email": ""}}, ())
    sealed = with_sealed_email(plan, KEY, "someone@example.com", "r1")
    assert is_sealed(sealed)
    assert not is_sealed(plan)
    assert "someone" not in sealed.to_json()
    payload = {**sealed.base, "step": 0}
    opened = open_payload(payload, KEY, "r1")
    assert opened["contact"] == {"id": "c1", "email": "someone@example.com"}
    assert SEALED_EMAIL in sealed.base["contact"]  # the stored form is not touched
    # No key (never read): the sealed value is still not sent.
    assert open_payload(payload, None, "r1")["contact"] == {"id": "c1", "email": ""}
