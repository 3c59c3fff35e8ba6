"""Throwaway signing keys and tokens for the auth tests."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://issuer.test"
AUDIENCE = "switchboard"


class Signer:
    """An RSA key with a kid; writes its public JWKS and signs tokens."""

    def __init__(self, kid: str = "k1") -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()), "utf-8")
        return path

    def token(self, alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "svc-web",
            "iat": now,
            "exp": now + 300,
            "scope": "contacts:read",
            **claims,
        }
        return jwt.encode(body, self.private, algorithm=alg, headers={"kid": self.kid})


def jwt_settings(jwks_file: Path) -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["RS256"],
        "jwks_file": str(jwks_file),
    }
