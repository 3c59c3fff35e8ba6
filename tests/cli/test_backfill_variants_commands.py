"""`switchboard connectors backfill` and `switchboard triggers variants` against a live server."""

from __future__ import annotations

import json

from tests.cli.conftest import Invoke


def test_connectors_backfill_reports_progress_and_continues(invoke: Invoke) -> None:
    for name in ("ann", "bob", "cy"):
        email = f"{name}@example.com"
        assert invoke("trigger", "newsletter.signup", "--contact", email).exit_code == 0
    result = invoke("connectors", "backfill", "crm", "--restart")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].endswith("done")
    queued = int(lines[-1].split()[1])
    assert queued >= 3
    # Run again: nothing left to queue, the same total.
    again = invoke("connectors", "backfill", "crm", "--json")
    last = json.loads(again.output.strip().splitlines()[-1])
    assert int(last["queued"]) == queued
    assert last["done"] is True
    assert int(last.get("finished", 0)) == 0


def test_connectors_backfill_history(invoke: Invoke) -> None:
    email = "hist@example.com"
    assert invoke("trigger", "newsletter.signup", "--contact", email).exit_code == 0
    result = invoke("connectors", "backfill", "crm", "--history", "--restart", "--json")
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["done"] is True, result.output
    total = int(last["events_total"])
    assert total >= 1  # at least the contact's creation
    assert int(last["queued"]) + int(last.get("events_skipped", 0)) == total
    text = invoke("connectors", "backfill", "crm", "--history")
    assert text.exit_code == 0, text.output
    assert f"events {total} (skipped " in text.output
    assert text.output.strip().endswith("done")


def test_connectors_backfill_unknown_connector(invoke: Invoke) -> None:
    result = invoke("connectors", "backfill", "nope")
    assert result.exit_code != 0
    assert "no connector named 'nope'" in result.output


def test_triggers_variants_needs_variants(invoke: Invoke) -> None:
    result = invoke("triggers", "variants", "newsletter.signup")
    assert result.exit_code != 0
    assert "has no variants" in result.output
