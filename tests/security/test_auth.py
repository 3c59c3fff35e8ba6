"""API keys and JWT bearer tokens: UNAUTHENTICATED without valid credentials,
PERMISSION_DENIED without the scope, health and reflection open."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchboard.client import Switchboard, SwitchboardError
from switchboard.server.app import App
from switchboard.server.auth.api_keys import generate_key, hash_key
from switchboard.server.scopes import SCOPE_BY_METHOD
from tests.rawcalls import all_rpcs
from tests.security.keys import Signer, jwt_settings

StartApp = Callable[..., Awaitable[App]]
READER = generate_key()
ADMIN_OLD = generate_key()
ADMIN_NEW = generate_key()
CALLERS = {
    "reader": {"scopes": ["contacts:read"], "key_sha256": [hash_key(READER)]},
    "admin": {
        "scopes": sorted(set(SCOPE_BY_METHOD.values())),
        "key_sha256": [hash_key(ADMIN_OLD), hash_key(ADMIN_NEW)],
    },
}


async def _code(app: App, credential: str | None, call: str = "get") -> grpc.StatusCode:
    async with Switchboard(f"127.0.0.1:{app.port}", api_key=credential, timeout=5.0) as sb:
        try:
            if call == "get":
                await sb.contacts.get(email="nobody@example.com")
            else:
                await sb.contacts.upsert(email="w@example.com")
        except SwitchboardError as exc:
            return exc.code
    return grpc.StatusCode.OK


@pytest.fixture
async def secured(start_app: StartApp, tmp_path: Path) -> tuple[App, Signer]:
    signer = Signer()
    jwks = signer.write_jwks(tmp_path / "jwks.json")
    app = await start_app(auth={"enabled": True, "callers": CALLERS, "jwt": jwt_settings(jwks)})
    return app, signer


@pytest.mark.parametrize(
    ("credential", "expected"),
    [
        pytest.param(None, grpc.StatusCode.UNAUTHENTICATED, id="missing"),
        pytest.param(generate_key(), grpc.StatusCode.UNAUTHENTICATED, id="unknown-key"),
        pytest.param("not-a-credential", grpc.StatusCode.UNAUTHENTICATED, id="garbage"),
        pytest.param(READER, grpc.StatusCode.NOT_FOUND, id="reader-reads"),
        pytest.param(ADMIN_OLD, grpc.StatusCode.NOT_FOUND, id="rotated-old-key"),
        pytest.param(ADMIN_NEW, grpc.StatusCode.NOT_FOUND, id="rotated-new-key"),
    ],
)
async def test_api_keys(
    secured: tuple[App, Signer], credential: str | None, expected: grpc.StatusCode
) -> None:
    assert await _code(secured[0], credential) == expected


async def test_missing_scope_is_permission_denied(secured: tuple[App, Signer]) -> None:
    assert await _code(secured[0], READER, call="upsert") == grpc.StatusCode.PERMISSION_DENIED


async def test_scheme_other_than_bearer_is_unauthenticated(secured: tuple[App, Signer]) -> None:
    app = secured[0]
    async with Switchboard(
        f"127.0.0.1:{app.port}", metadata={"authorization": f"Basic {READER}"}, timeout=5.0
    ) as sb:
        with pytest.raises(SwitchboardError) as caught:
            await sb.contacts.get(email="nobody@example.com")
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED


def _none_alg_token(signer: Signer) -> str:
    # A well-formed token claiming alg "none" with no signature.
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = json.loads(base64.urlsafe_b64decode(signer.token().split(".")[1] + "=="))
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': signer.kid})}.{part(claims)}."


@pytest.mark.parametrize(
    ("make_token", "expected"),
    [
        pytest.param(lambda s: s.token(), grpc.StatusCode.NOT_FOUND, id="valid"),
        pytest.param(
            lambda s: s.token(scope="leads:read"), grpc.StatusCode.PERMISSION_DENIED, id="no-scope"
        ),
        pytest.param(lambda s: s.token(exp=1), grpc.StatusCode.UNAUTHENTICATED, id="expired"),
        pytest.param(
            lambda s: s.token(nbf=4_000_000_000), grpc.StatusCode.UNAUTHENTICATED, id="not-yet"
        ),
        pytest.param(
            lambda s: s.token(iss="https://evil.test"),
            grpc.StatusCode.UNAUTHENTICATED,
            id="wrong-issuer",
        ),
        pytest.param(
            lambda s: s.token(aud="someone-else"), grpc.StatusCode.UNAUTHENTICATED, id="wrong-aud"
        ),
        pytest.param(
            lambda s: Signer(kid=s.kid).token(), grpc.StatusCode.UNAUTHENTICATED, id="other-key"
        ),
        pytest.param(
            lambda s: s.token(alg="PS256"), grpc.StatusCode.UNAUTHENTICATED, id="unpinned-alg"
        ),
        pytest.param(_none_alg_token, grpc.StatusCode.UNAUTHENTICATED, id="alg-none"),
    ],
)
async def test_jwt(
    secured: tuple[App, Signer], make_token: Callable[[Signer], str], expected: grpc.StatusCode
) -> None:
    app, signer = secured
    assert await _code(app, make_token(signer)) == expected


async def test_health_and_reflection_are_open(secured: tuple[App, Signer]) -> None:
    app = secured[0]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5.0)
        reflection = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )(timeout=5.0)
        # list_services = field 7 (string), value "".
        await reflection.write(b"\x3a\x00")
        await reflection.read()
        reflection.cancel()


async def test_open_services_are_configurable(start_app: StartApp) -> None:
    app = await start_app(auth={"enabled": True, "open_services": []})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5.0)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_every_rpc_has_a_scope() -> None:
    assert sorted(SCOPE_BY_METHOD) == sorted(rpc.path for rpc in all_rpcs())


async def test_unauthenticated_raw_garbage_is_refused_before_decoding(
    secured: tuple[App, Signer],
) -> None:
    app = secured[0]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/switchboard.v1.ContactSync/GetContact")(b"\xff")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
