"""`switchboard events export` and `switchboard contacts data-export` against a live server."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from switchboard.client import SyncSwitchboard
from tests.cli.conftest import Invoke
from tests.tooling.live import LOCAL_KEY


def _import(invoke: Invoke, tmp_path: Path, *emails: str) -> None:
    source = tmp_path / "people.jsonl"
    source.write_text(
        "".join(json.dumps({"email": e, "first_name": "Kim", "plan": "pro"}) + "\n" for e in emails)
    )
    result = invoke("contacts", "import", source)
    assert result.exit_code == 0, result.output


def _contact_events(invoke: Invoke, *args: str) -> list[dict[str, object]]:
    result = invoke("events", "export", "--type", "contact.created", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_export_jsonl_and_csv_carry_values(invoke: Invoke, tmp_path: Path) -> None:
    _import(invoke, tmp_path, "jsonl-1@example.com", "jsonl-2@example.com")
    rows = _contact_events(invoke)
    emails = [r["contact_changed"]["contact"]["email"] for r in rows]  # type: ignore[index]
    assert {"jsonl-1@example.com", "jsonl-2@example.com"} <= set(emails)
    assert all(r["schema_version"] == 2 for r in rows)

    result = invoke("events", "export", "--type", "contact.created", "--format", "csv")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [json.loads(r["values"])["contact"]["email"] for r in table] == emails
    assert all(r["type"] == "contact.created" for r in table)
    assert "last cursor" in result.stderr


def test_export_since_and_resume(invoke: Invoke, tmp_path: Path) -> None:
    first = _contact_events(invoke)
    last = str(first[-1]["cursor"]) if first else "0"
    _import(invoke, tmp_path, "resume@example.com")
    after = _contact_events(invoke, "--after-cursor", last)
    assert [r["contact_changed"]["contact"]["email"] for r in after] == ["resume@example.com"]  # type: ignore[index]
    assert _contact_events(invoke, "--since", "2999-01-01") == []
    bad = invoke("events", "export", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "ISO 8601" in bad.output


def test_data_export_and_erasure(invoke: Invoke, target: str, tmp_path: Path) -> None:
    _import(invoke, tmp_path, "subject@example.com")
    out = tmp_path / "subject.json"
    result = invoke("contacts", "data-export", "subject@example.com", "-o", out)
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["contact"]["email"] == "subject@example.com"
    assert document["lead"]["contact_id"] == document["contact"]["id"]
    assert [e["type"] for e in document["history"]][-1] == "contact.created"

    with SyncSwitchboard(target, api_key=LOCAL_KEY[0] if LOCAL_KEY else None) as sb:
        sb.contacts.delete(email="subject@example.com")
    gone = invoke("contacts", "data-export", "subject@example.com")
    assert gone.exit_code == 1
    assert "NOT_FOUND" in gone.output or "not found" in gone.output.lower()
    everything = invoke("events", "export")
    assert everything.exit_code == 0
    assert "subject@example.com" not in everything.stdout
    assert "erased people skipped" in everything.stderr
