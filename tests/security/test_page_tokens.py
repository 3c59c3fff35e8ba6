"""Page tokens are signed by the server: a forged, damaged or re-aimed token is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchboard.client import InvalidArgumentError, Switchboard
from switchboard.server.app.build import App, StartupError, build_app
from switchboard.server.config.settings import settings_for_tests

StartApp = Callable[..., Awaitable[App]]
OLD = "o" * 32
NEW = "n" * 32
PING = {"demo.ping": {"steps": [{"connector": "fake", "action": "echo"}]}}


async def _seed(app: App, contacts: int = 6) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        for i in range(contacts):
            await sb.contacts.upsert(email=f"p{i}@example.com", lists=["vip"] if i % 2 else [])


async def _first_page_token(app: App, **filters: Any) -> str:
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        page = await sb.contacts.list(page_size=2, **filters)
    assert page.next_page_token
    return str(page.next_page_token)


async def _refusal(app: App, token: str, **filters: Any) -> InvalidArgumentError:
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        with pytest.raises(InvalidArgumentError) as info:
            await sb.contacts.list(page_size=2, page_token=token, **filters)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in info.value.field_violations] == ["page_token"]
    return info.value


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _reaimed(token: str) -> str:
    """The token with its cursor moved back to the start, everything else kept."""
    payload, dot, rest = token.partition(".")
    fields = json.loads(_unb64(payload))
    fields[0], fields[1] = 0, ""
    forged = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")
    return forged + dot + rest


def _flipped(token: str) -> str:
    last = token[-2]
    return token[:-2] + ("A" if last != "A" else "B") + token[-1]


async def test_pages_follow_each_other_to_the_end(start_app: StartApp) -> None:
    app = await start_app(
        page_tokens={"keys": [NEW]}, connectors={"fake": {"kind": "fake"}}, triggers=PING
    )
    await _seed(app)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        seen: list[str] = []
        token = ""
        while True:
            page = await sb.contacts.list(page_size=2, page_token=token)
            seen += [c.email for c in page.contacts]
            token = page.next_page_token
            if not token:
                break
        for i in range(3):
            await sb.campaigns.trigger("demo.ping", email=f"p{i}@example.com")
        runs = [r.id async for r in sb.campaigns.iter_runs(event="demo.ping", page_size=2)]
    assert sorted(seen) == sorted(f"p{i}@example.com" for i in range(6))
    assert len(runs) == len(set(runs)) == 3


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(_reaimed, id="re-aimed-cursor"),
        pytest.param(_flipped, id="altered-signature"),
        pytest.param(lambda t: t[: len(t) // 2], id="truncated"),
        pytest.param(lambda t: t.partition(".")[0], id="signature-dropped"),
        pytest.param(lambda t: "garbage!", id="garbage"),
    ],
)
async def test_a_forged_or_damaged_token_is_invalid_argument(
    start_app: StartApp, forge: Callable[[str], str]
) -> None:
    app = await start_app()
    await _seed(app)
    token = await _first_page_token(app)
    refusal = await _refusal(app, forge(token))
    assert "without page_token" in refusal.field_violations[0].description


async def test_a_token_for_other_filters_is_invalid_argument(start_app: StartApp) -> None:
    app = await start_app()
    await _seed(app)
    token = await _first_page_token(app, list="vip")
    refusal = await _refusal(app, token)  # same listing, the `list` filter dropped
    assert "different filters" in refusal.field_violations[0].description


async def test_a_listed_old_key_still_verifies_during_rotation(start_app: StartApp) -> None:
    before = await start_app(page_tokens={"keys": [OLD]})
    await _seed(before)
    old_token = await _first_page_token(before)
    rotating = await start_app(page_tokens={"keys": [NEW, OLD]})  # same database
    async with Switchboard(f"127.0.0.1:{rotating.port}") as sb:
        rest = await sb.contacts.list(page_size=2, page_token=old_token)
    assert len(rest.contacts) == 2
    new_token = rest.next_page_token
    after = await start_app(page_tokens={"keys": [NEW]})  # the old key retired
    async with Switchboard(f"127.0.0.1:{after.port}") as sb:
        last = await sb.contacts.list(page_size=2, page_token=new_token)
    assert [c.email for c in last.contacts] == ["p4@example.com", "p5@example.com"]
    refusal = await _refusal(after, old_token)
    assert "key no longer configured" in refusal.field_violations[0].description


async def test_the_generated_key_is_shared_by_every_server_on_the_database(
    start_app: StartApp, tmp_path: Path
) -> None:
    first = await start_app()  # no keys configured: the database's own key
    await _seed(first)
    token = await _first_page_token(first)
    second = await start_app()  # another worker (or a restart) on the same database
    async with Switchboard(f"127.0.0.1:{second.port}") as sb:
        assert len((await sb.contacts.list(page_size=2, page_token=token)).contacts) == 2
    other = await build_app(settings_for_tests(tmp_path / "other.db"))
    await other.start()
    try:
        await _refusal(other, token)  # another database made its own key
    finally:
        await other.stop(grace_s=1.0)


async def test_keys_by_reference(
    start_app: StartApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "page.key"
    key_file.write_text(OLD + "\n")
    monkeypatch.setenv("SB_TEST_PAGE_KEY", NEW)
    by_file = await start_app(page_tokens={"keys": [f"file:{key_file}"]})
    await _seed(by_file)
    token = await _first_page_token(by_file)
    by_env = await start_app(page_tokens={"keys": ["env:SB_TEST_PAGE_KEY", OLD]})
    async with Switchboard(f"127.0.0.1:{by_env.port}") as sb:
        assert len((await sb.contacts.list(page_size=2, page_token=token)).contacts) == 2


@pytest.mark.parametrize(
    ("key", "message"),
    [
        pytest.param("env:SB_TEST_UNSET_KEY", "'SB_TEST_UNSET_KEY' is not set", id="unset-env"),
        pytest.param("file:/nonexistent/page.key", "cannot read", id="missing-file"),
        pytest.param("short", "at least 32 bytes", id="too-short"),
    ],
)
async def test_an_unusable_key_stops_start_up(
    make_settings: Callable[..., Any], key: str, message: str
) -> None:
    with pytest.raises(StartupError, match=message) as info:
        await build_app(make_settings(page_tokens={"keys": [key]}))
    assert "page_tokens.keys[0]" in str(info.value)
