"""Inbound webhooks: signed third-party events start configured triggers, once."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.common.signing import sign

StartApp = Callable[..., Awaitable[App]]
OLD_KEY, NEW_KEY = b"o" * 32, b"n" * 32
SECRETS = ["whsec_" + base64.b64encode(k).decode() for k in (OLD_KEY, NEW_KEY)]
TRIGGERS = {"application.received": {"steps": [{"connector": "fake", "action": "echo"}]}}
EVENT = {"type": "application.received", "applicant": {"email": "jo@example.com"}, "id": 7}


async def _start(start_app: StartApp, max_body_bytes: int = 4096) -> App:
    inbound = {
        "listen": "127.0.0.1:0",
        "max_body_bytes": max_body_bytes,
        "sources": {
            "jobs": {
                "secrets": SECRETS,
                "event": "application.received",
                "email_field": "applicant.email",
            }
        },
    }
    return await start_app(
        connectors={"fake": {"kind": "fake"}}, triggers=TRIGGERS, inbound=inbound
    )


def _headers(
    body: bytes, msg_id: str = "msg_1", key: bytes = NEW_KEY, **over: Any
) -> dict[str, str]:
    stamp = int(time.time() + over.pop("offset", 0))
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(key, msg_id, stamp, body),
    }
    headers.update(over)
    return headers


async def _post(
    app: App, body: bytes, headers: dict[str, str], source: str = "jobs"
) -> httpx.Response:
    assert app.inbound is not None
    url = f"http://127.0.0.1:{app.inbound.port}/webhooks/{source}"
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body, headers=headers)


async def _runs(app: App) -> list[Any]:
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        return list((await sb.campaigns.list_runs(event="application.received")).runs)


async def test_signed_event_starts_the_trigger_once(start_app: StartApp) -> None:
    app = await _start(start_app)
    body = json.dumps(EVENT).encode()
    first = await _post(app, body, _headers(body))
    again = await _post(app, body, _headers(body))  # the sender retried the same message
    assert first.status_code == again.status_code == 200
    assert first.json()["run_id"] == again.json()["run_id"]
    [run] = await _runs(app)
    assert run.id == first.json()["run_id"]
    assert run.attributes["applicant"]["email"] == "jo@example.com"
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        contact = await sb.contacts.get(email="jo@example.com")
    assert contact.id == run.contact_id


async def test_an_old_secret_still_verifies_during_rotation(start_app: StartApp) -> None:
    app = await _start(start_app)
    body = json.dumps(EVENT).encode()
    response = await _post(app, body, _headers(body, key=OLD_KEY))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("tamper", "status"),
    [
        pytest.param({"key": b"x" * 32}, 401, id="bad-signature"),
        pytest.param({"offset": -310}, 401, id="stale"),
        pytest.param({"offset": 310}, 401, id="future"),
        pytest.param({"webhook-signature": ""}, 401, id="unsigned"),
    ],
)
async def test_refused_requests_record_nothing(
    start_app: StartApp, tamper: dict[str, Any], status: int
) -> None:
    app = await _start(start_app)
    body = json.dumps(EVENT).encode()
    response = await _post(app, body, _headers(body, **tamper))
    assert response.status_code == status
    assert await _runs(app) == []


async def test_oversize_body_is_413(start_app: StartApp) -> None:
    app = await _start(start_app, max_body_bytes=256)
    body = json.dumps({**EVENT, "pad": "x" * 1000}).encode()
    response = await _post(app, body, _headers(body))
    assert response.status_code == 413
    assert await _runs(app) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"not json", 400, id="not-json"),
        pytest.param(b"[1, 2]", 400, id="not-object"),
        pytest.param(b'{"applicant": {}}', 422, id="no-email"),
    ],
)
async def test_unusable_bodies_are_refused(start_app: StartApp, body: bytes, status: int) -> None:
    app = await _start(start_app)
    response = await _post(app, body, _headers(body))
    assert response.status_code == status
    assert await _runs(app) == []


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/plain", id="text"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param("multipart/form-data; boundary=x", id="multipart"),
        pytest.param("application/json; charset=iso-8859-1", id="json-latin1"),
        pytest.param("application/jsonp", id="jsonp"),
        pytest.param(None, id="missing"),
    ],
)
async def test_a_body_not_declared_json_is_415(
    start_app: StartApp, content_type: str | None
) -> None:
    app = await _start(start_app)
    body = json.dumps(EVENT).encode()
    headers = _headers(body)  # correctly signed: only the media type is wrong
    if content_type is None:
        del headers["content-type"]
    else:
        headers["content-type"] = content_type
    response = await _post(app, body, headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert response.headers["accept"] == "application/json, application/*+json"
    assert await _runs(app) == []


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/json; charset=utf-8", id="utf-8"),
        pytest.param("Application/JSON; charset=UTF-8", id="upper-case"),
        pytest.param("application/cloudevents+json", id="suffix"),
    ],
)
async def test_json_media_types_are_accepted(start_app: StartApp, content_type: str) -> None:
    app = await _start(start_app)
    body = json.dumps(EVENT).encode()
    response = await _post(app, body, _headers(body, **{"content-type": content_type}))
    assert response.status_code == 200
    assert len(await _runs(app)) == 1


async def test_unknown_source_is_404(start_app: StartApp) -> None:
    app = await _start(start_app)
    body = json.dumps(EVENT).encode()
    response = await _post(app, body, _headers(body), source="nobody")
    assert response.status_code == 404


async def test_same_id_with_another_body_is_409(start_app: StartApp) -> None:
    app = await _start(start_app)
    body = json.dumps(EVENT).encode()
    other = json.dumps({**EVENT, "id": 8}).encode()
    assert (await _post(app, body, _headers(body))).status_code == 200
    assert (await _post(app, other, _headers(other))).status_code == 409


def test_a_source_must_start_a_configured_trigger(make_settings: Callable[..., Any]) -> None:
    inbound = {"sources": {"jobs": {"secrets": SECRETS, "event": "nope"}}}
    with pytest.raises(ValueError, match="has no trigger"):
        make_settings(inbound=inbound)
