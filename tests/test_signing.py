"""Standard Webhooks signing and verification."""

from __future__ import annotations

import base64

import pytest

from switchboard.server.common.signing import SignatureError, decode_secret, sign, verify

KEY = b"k" * 32
BODY = b'{"a":1}'


def _headers(signature: str, stamp: int = 1000, msg_id: str = "m1") -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def test_signature_matches_the_spec_formula() -> None:
    import hashlib
    import hmac

    digest = hmac.new(KEY, b"m1.1000." + BODY, hashlib.sha256).digest()
    assert sign(KEY, "m1", 1000, BODY) == "v1," + base64.b64encode(digest).decode()


def test_any_of_several_signatures_and_secrets_verifies() -> None:
    other = b"o" * 32
    offered = f"v1,AAAA {sign(other, 'm1', 1000, BODY)}"
    assert verify([KEY, other], _headers(offered), BODY, now=1000, tolerance_s=300) == "m1"


@pytest.mark.parametrize(
    ("headers", "now", "message"),
    [
        pytest.param(_headers(sign(KEY, "m1", 1000, b"{}")), 1000, "no valid", id="body-changed"),
        pytest.param(_headers(sign(KEY, "m1", 1000, BODY)), 1301, "tolerance", id="stale"),
        pytest.param(_headers(sign(KEY, "m1", 1000, BODY), stamp=1001), 1000, "no valid", id="ts"),
        pytest.param({"webhook-id": "m1"}, 1000, "required", id="missing"),
        pytest.param(_headers("v1,x", stamp=-5), 1000, "whole seconds", id="bad-ts"),
    ],
)
def test_refusals(headers: dict[str, str], now: float, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify([KEY], headers, BODY, now=now, tolerance_s=300)


def test_decode_secret() -> None:
    assert decode_secret("whsec_" + base64.b64encode(KEY).decode()) == KEY
    with pytest.raises(ValueError, match="whsec_"):
        decode_secret(base64.b64encode(KEY).decode())
