"""`switchboard admin rebuild-read-models` against a live server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Invoke


def test_rebuild_shows_progress_and_a_summary(invoke: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "people.jsonl"
    source.write_text(
        "".join(json.dumps({"email": f"rebuild-{n}@example.com"}) + "\n" for n in range(3))
    )
    assert invoke("contacts", "import", source).exit_code == 0
    before = invoke("contacts", "get", "rebuild-1@example.com")
    assert before.exit_code == 0, before.output
    result = invoke("admin", "rebuild-read-models")
    assert result.exit_code == 0, result.output
    assert "events/s" not in result.stdout
    assert "/s), cursor " in result.stderr
    assert result.stdout.startswith("rebuilt and swapped in: ")
    assert "contacts with schema-1 history kept" in result.stdout
    assert " leads (0 not in the log, kept as they were)" in result.stdout
    after = invoke("contacts", "get", "rebuild-1@example.com")
    assert after.exit_code == 0, after.output
    assert after.stdout == before.stdout

    dry = invoke("admin", "rebuild-read-models", "--dry-run", "--quiet")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("built (dry run, not swapped): ")
    assert dry.stderr == ""
