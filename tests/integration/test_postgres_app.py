"""A real server on PostgreSQL (`database.url`), driven through the client as users do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from switchboard.client import Switchboard
from switchboard.client.cli import main
from switchboard.server.app.build import App
from switchboard.v1 import campaigns_pb2

pytestmark = pytest.mark.slow  # a real PostgreSQL server process

StartApp = Callable[..., Awaitable[App]]


async def test_upsert_get_and_trigger_deliver_on_postgres(start_app: StartApp, pg_url: str) -> None:
    app = await start_app(database={"url": pg_url})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        first = await sb.contacts.upsert(
            email="pg@example.com", first_name="Pia", idempotency_key="k-1"
        )
        again = await sb.contacts.upsert(
            email="pg@example.com", first_name="Pia", idempotency_key="k-1"
        )
        assert first.created
        assert again.contact == first.contact
        got = await sb.contacts.get(email="pg@example.com")
        assert (got.id, got.first_name) == (first.contact.id, "Pia")
        run = await sb.campaigns.trigger(
            "newsletter.signup",
            email="pg@example.com",
            contact={"consent": True, "consent_source": "footer-form"},
            wait=True,
        )
    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    # crm and esp delivered; personalization skipped: the contact gave no consent for it.
    assert [s.status for s in run.steps] == [
        campaigns_pb2.STEP_STATUS_SUCCEEDED,
        campaigns_pb2.STEP_STATUS_SUCCEEDED,
        campaigns_pb2.STEP_STATUS_SKIPPED,
    ]
    assert await app.store.read(lambda tx: tx.outbox_depth()) == 0
    crm = await app.store.connector_state("crm").get("contacts", got.id)
    assert crm is not None


def test_db_upgrade_migrates_then_finds_nothing_to_do(pg_url: str, tmp_path: Path) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text(f'[database]\nurl = "{pg_url}"\n')
    runner = CliRunner()
    first = runner.invoke(main, ["db", "upgrade", "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert "schema upgraded from version 0 to" in first.output
    second = runner.invoke(main, ["db", "upgrade", "--config", str(config)])
    assert second.exit_code == 0, second.output
    assert "schema is up to date" in second.output


def test_db_upgrade_against_no_server_fails_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text(
        '[database]\nurl = "postgresql://sb:hunter2@127.0.0.1:1/x"\npool_timeout_s = 1\n'
    )
    result = CliRunner().invoke(main, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 1
    assert "cannot migrate" in result.output
    assert "hunter2" not in result.output
