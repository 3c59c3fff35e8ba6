"""TLS and mutual TLS on the gRPC port: a good client works; a wrong CA, an expired
certificate, a missing client certificate and a plaintext client are refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from pydantic import ValidationError

from switchboard.client import Switchboard, SwitchboardError, TLSConfig
from switchboard.server.app.build import App, StartupError, build_app
from switchboard.server.config.security import TlsSettings
from switchboard.server.config.settings import Settings
from tests.security.certs import Authority, Pem

StartApp = Callable[..., Awaitable[App]]


class Pki:
    """One good CA with server and client certificates, and one rogue CA."""

    def __init__(self) -> None:
        self.ca = Authority("switchboard-test-ca")
        self.rogue = Authority("rogue-ca")
        self.server = self.ca.issue("localhost", server=True)
        self.client = self.ca.issue("svc-web", server=False)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


async def _start(
    start_app: StartApp, tmp_path: Path, server: Pem, client_ca: bytes | None, require: bool
) -> App:
    cert, key = server.write(tmp_path, "server")
    tls: dict[str, Any] = {"cert_file": str(cert), "key_file": str(key)}
    if client_ca is not None:
        ca_file = tmp_path / "client-ca.pem"
        ca_file.write_bytes(client_ca)
        tls |= {"client_ca_file": str(ca_file), "require_client_cert": require}
    return await start_app(tls=tls)


async def _call(app: App, **tls: Any) -> grpc.StatusCode:
    # Short deadline: a refused handshake shows as UNAVAILABLE (retried by the client).
    async with Switchboard(f"localhost:{app.port}", timeout=3.0, **tls) as sb:
        try:
            await sb.connectors.list()
        except SwitchboardError as exc:
            return exc.code
    return grpc.StatusCode.OK


async def test_tls_client_trusting_the_ca_works(
    start_app: StartApp, tmp_path: Path, pki: Pki
) -> None:
    app = await _start(start_app, tmp_path, pki.server, None, False)
    assert await _call(app, tls=TLSConfig(root_certificates=pki.ca.pem)) == grpc.StatusCode.OK


@pytest.mark.parametrize(
    "client",
    [
        pytest.param("plaintext", id="plaintext-client"),
        pytest.param("rogue-ca", id="client-trusts-wrong-ca"),
    ],
)
async def test_tls_refuses(start_app: StartApp, tmp_path: Path, pki: Pki, client: str) -> None:
    app = await _start(start_app, tmp_path, pki.server, None, False)
    tls: dict[str, Any] = (
        {} if client == "plaintext" else {"tls": TLSConfig(root_certificates=pki.rogue.pem)}
    )
    assert await _call(app, **tls) == grpc.StatusCode.UNAVAILABLE


async def test_expired_server_certificate_is_refused_by_the_client(
    start_app: StartApp, tmp_path: Path, pki: Pki
) -> None:
    expired = pki.ca.issue("localhost", server=True, expired=True)
    app = await _start(start_app, tmp_path, expired, None, False)
    code = await _call(app, tls=TLSConfig(root_certificates=pki.ca.pem))
    assert code == grpc.StatusCode.UNAVAILABLE


def _client_tls(pki: Pki, client: Pem | None) -> dict[str, Any]:
    if client is None:
        return {"tls": TLSConfig(root_certificates=pki.ca.pem)}
    return {
        "tls": TLSConfig(
            root_certificates=pki.ca.pem,
            client_cert_chain=client.cert,
            client_private_key=client.key,
        )
    }


async def test_mtls_good_client_certificate_works(
    start_app: StartApp, tmp_path: Path, pki: Pki
) -> None:
    app = await _start(start_app, tmp_path, pki.server, pki.ca.pem, True)
    assert await _call(app, **_client_tls(pki, pki.client)) == grpc.StatusCode.OK


@pytest.mark.parametrize(
    "which",
    [
        pytest.param("none", id="no-client-cert"),
        pytest.param("rogue", id="client-cert-from-wrong-ca"),
        pytest.param("expired", id="expired-client-cert"),
    ],
)
async def test_mtls_refuses(start_app: StartApp, tmp_path: Path, pki: Pki, which: str) -> None:
    client = {
        "none": None,
        "rogue": pki.rogue.issue("intruder", server=False),
        "expired": pki.ca.issue("svc-old", server=False, expired=True),
    }[which]
    app = await _start(start_app, tmp_path, pki.server, pki.ca.pem, True)
    assert await _call(app, **_client_tls(pki, client)) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    "tls",
    [
        pytest.param({"cert_file": "c.pem"}, id="cert-without-key"),
        pytest.param({"require_client_cert": True}, id="mtls-without-ca"),
        pytest.param({"client_ca_file": "ca.pem"}, id="ca-without-cert"),
    ],
)
def test_incomplete_tls_settings_are_refused(tls: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TlsSettings(**tls)


async def test_missing_certificate_file_stops_start_up(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    tls = {"cert_file": str(tmp_path / "none.crt"), "key_file": str(tmp_path / "none.key")}
    with pytest.raises(StartupError):
        await build_app(make_settings(tls=tls))


async def test_inbound_webhook_port_serves_tls_too(
    start_app: StartApp, tmp_path: Path, pki: Pki
) -> None:
    import ssl

    import httpx

    cert, key = pki.server.write(tmp_path, "server")
    app = await start_app(
        tls={"cert_file": str(cert), "key_file": str(key)},
        inbound={"listen": "127.0.0.1:0"},
    )
    assert app.inbound is not None
    trusted = ssl.create_default_context(cadata=pki.ca.pem.decode())
    url = f"https://localhost:{app.inbound.port}/webhooks/nope"
    async with httpx.AsyncClient(verify=trusted) as client:
        answer = await client.post(url, content=b"{}")
    assert answer.status_code == 404  # TLS worked; the source is unknown
    rogue = ssl.create_default_context(cadata=pki.rogue.pem.decode())
    async with httpx.AsyncClient(verify=rogue) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(url, content=b"{}")
    async with httpx.AsyncClient() as client:  # plaintext HTTP on a TLS port
        with pytest.raises(httpx.HTTPError):
            await client.post(url.replace("https", "http"), content=b"{}")
