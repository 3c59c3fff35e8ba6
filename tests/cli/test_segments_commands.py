"""`switchboard segments create|list|count|export` against a live server."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tests.cli.conftest import Invoke


def test_create_count_and_export_members(invoke: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "people.jsonl"
    people = [
        {"email": f"p{i}@example.com", "country": "FR" if i % 3 else "DE", "lists": ["news"]}
        for i in range(7)
    ]
    source.write_text("".join(json.dumps(p) + "\n" for p in people))
    assert invoke("contacts", "import", source).exit_code == 0

    made = invoke("segments", "create", "french", 'country == "FR" && "news" in lists')
    assert made.exit_code == 0, made.output
    bad = invoke("segments", "create", "oops", "contry == 'FR'")
    assert bad.exit_code != 0
    assert 'unknown field "contry" at 1:1' in bad.output

    listed = invoke("segments", "list")
    assert 'french\tcountry == "FR" && "news" in lists' in listed.stdout
    count = invoke("segments", "count", "french")
    assert count.stdout.strip() == "4"

    jsonl = invoke("segments", "export", "french", "--page-size", "3")
    assert jsonl.exit_code == 0, jsonl.output
    emails = sorted(json.loads(line)["email"] for line in jsonl.stdout.splitlines())
    assert emails == [f"p{i}@example.com" for i in (1, 2, 4, 5)]
    assert "exported 4 contacts" in jsonl.stderr

    out = tmp_path / "french.csv"
    as_csv = invoke("segments", "export", "french", "--format", "csv", "-o", out)
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted(r["email"] for r in rows) == emails
    assert {r["country"] for r in rows} == {"FR"}
