"""Standard Webhooks signatures, shared by the webhook connector (signing outbound
requests) and the inbound endpoint (verifying incoming ones).

A secret is `whsec_` + base64 of the key. The `v1` signature of a message is
base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}")), sent as `v1,<sig>`;
several space-separated signatures may be sent while secrets rotate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

_MIN_KEY_BYTES = 16


class SignatureError(Exception):
    """The request is not signed by a known secret, or is too old or too new."""


def decode_secret(secret: object) -> bytes:
    """The HMAC key inside a `whsec_<base64>` secret.

    Raises:
        ValueError: saying what is wrong with the secret (never echoing it).
    """
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise ValueError("a secret must look like 'whsec_<base64>'")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error as exc:
        raise ValueError("the secret is not valid base64") from exc
    if len(key) < _MIN_KEY_BYTES:
        raise ValueError(f"the secret must hold at least {_MIN_KEY_BYTES} bytes")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(
    keys: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: float,
) -> str:
    """Check an incoming message; return its webhook-id.

    Raises:
        SignatureError: missing headers, a timestamp outside `tolerance_s` of `now`, or no
            signature that matches any of `keys` (compared in constant time).
    """
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    offered = headers.get("webhook-signature", "")
    if not msg_id or not stamp or not offered:
        raise SignatureError("webhook-id, webhook-timestamp and webhook-signature are required")
    if not stamp.isdigit():
        raise SignatureError("webhook-timestamp must be whole seconds since the epoch")
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("webhook-timestamp is outside the allowed tolerance")
    candidates = [s for s in offered.split(" ") if s.startswith("v1,")]
    expected = [sign(key, msg_id, timestamp, body) for key in keys]
    # Check every pair, so the time taken does not reveal which secret or signature matched.
    matched = False
    for mine in expected:
        for theirs in candidates:
            matched |= hmac.compare_digest(mine.encode(), theirs.encode())
    if not matched:
        raise SignatureError("no valid signature")
    return msg_id
