"""API keys and JWT bearer tokens: UNAUTHENTICATED without valid credentials,
PERMISSION_DENIED without the scope, health and reflection open."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchboard.client import Switchboard, SwitchboardError
from switchboard.server.app.build import App, StartupError, build_app
from switchboard.server.auth.api_keys import generate_key, hash_key
from switchboard.server.common.scopes import SCOPE_BY_METHOD
from tests.rawcalls import Rpc, all_rpcs, call_raw
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


async def test_unauthenticated_raw_garbage_is_refused_before_decoding(
    secured: tuple[App, Signer],
) -> None:
    app = secured[0]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/switchboard.v1.ContactSync/GetContact")(b"\xff")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


RPC_PARAMS = [pytest.param(rpc, id=rpc.path.rsplit(".", 1)[1]) for rpc in all_rpcs()]


@pytest.mark.parametrize("rpc", RPC_PARAMS)
async def test_every_rpc_needs_credentials(secured: tuple[App, Signer], rpc: Rpc) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured[0].port}") as channel:
        code = await call_raw(channel, rpc, [b""])
    assert code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("rpc", RPC_PARAMS)
async def test_every_rpc_needs_its_scope(start_app: StartApp, rpc: Rpc) -> None:
    key = generate_key()
    callers = {"nobody": {"scopes": [], "key_sha256": [hash_key(key)]}}
    app = await start_app(auth={"enabled": True, "callers": callers})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        code = await call_raw(channel, rpc, [b""], metadata=[("authorization", f"Bearer {key}")])
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_jwks_from_a_url(start_app: StartApp) -> None:
    signer = Signer()
    body = json.dumps(signer.jwks()).encode()

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
        jwt_cfg = {**jwt_settings(Path("unused")), "jwks_file": "", "jwks_url": url}
        app = await start_app(auth={"enabled": True, "jwt": jwt_cfg})
        codes = (await _code(app, signer.token()), await _code(app, Signer().token()))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert codes == (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED)


async def test_unreadable_jwks_file_stops_start_up(
    make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.json"
    settings = make_settings(auth={"enabled": True, "jwt": jwt_settings(missing)})
    with pytest.raises(StartupError, match="authentication"):
        await build_app(settings)
