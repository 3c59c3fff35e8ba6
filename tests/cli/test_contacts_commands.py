"""`switchboard contacts import|export` against a live server."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.cli.conftest import Invoke

CSV_TEXT = """\
Email Address,first_name,opt_in,lists,plan,version
ada@example.com,Ada,yes,newsletter;vip,pro,7
not-an-email,Bad,no,,free,
grace@example.com,Grace,maybe,,,
alan@example.com,Alan,no,,free,
"""


def _export_jsonl(invoke: Invoke) -> dict[str, dict[str, object]]:
    result = invoke("contacts", "export", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return {row["email"]: row for row in rows}


def test_csv_import_maps_columns_and_writes_rejected_rows(invoke: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text(CSV_TEXT)

    result = invoke("contacts", "import", source, "--map", "Email Address=email")

    assert result.exit_code == 3, result.output
    assert (
        "4 rows read, 3 sent: 2 created, 0 updated, 0 unchanged, 1 rejected by the server, "
        "1 unreadable" in result.stdout
    )
    with (tmp_path / "people.rejected.csv").open() as rejected_file:
        rejected = list(csv.DictReader(rejected_file))
    assert [(row["Email Address"], row["error"].split(":")[0]) for row in rejected] == [
        ("not-an-email", "INVALID_ARGUMENT"),
        ("grace@example.com", "consent"),
    ]
    contacts = _export_jsonl(invoke)
    ada = contacts["ada@example.com"]
    assert ada["lists"] == ["newsletter", "vip"]
    assert ada["attributes"] == {"plan": "pro"}  # `version` is read-only: skipped
    assert ada["consent"]["opt_in"] is True  # type: ignore[index]
    assert contacts["alan@example.com"]["attributes"] == {"plan": "free"}


def test_jsonl_import_reports_unreadable_lines(invoke: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "people.jsonl"
    lines = [
        {"email": "mary@example.com", "consent": {"opt_in": True, "source": "fair"}, "tier": 2},
        "{not json",
        ["a", "list"],
    ]
    source.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    rejected = tmp_path / "out" / "rejected.jsonl"
    rejected.parent.mkdir()

    result = invoke("contacts", "import", source, "--rejected", rejected)

    assert result.exit_code == 3, result.output
    written = [json.loads(line) for line in rejected.read_text().splitlines()]
    assert [row["_error"] for row in written] == [
        "not JSON: Expecting property name enclosed in double quotes",
        "not a JSON object",
    ]
    mary = _export_jsonl(invoke)["mary@example.com"]
    assert mary["attributes"] == {"tier": "2"}
    assert mary["consent"]["source"] == "fair"  # type: ignore[index]


def test_export_round_trips_through_import(invoke: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "seed.csv"
    source.write_text("email,company,lists\nlin@example.com,Initech,customers\n")
    assert invoke("contacts", "import", source).exit_code == 0
    exported = tmp_path / "all.csv"

    result = invoke("contacts", "export", "--list", "customers", "-o", exported)

    assert result.exit_code == 0, result.output
    assert "exported 1 contacts" in result.stderr
    with exported.open() as export_file:
        [row] = list(csv.DictReader(export_file))
    assert (row["email"], row["company"], row["lists"]) == (
        "lin@example.com",
        "Initech",
        "customers",
    )
    again = invoke("contacts", "import", exported, "--map", "id=ignore")
    assert again.exit_code == 0, again.output
    assert "1 sent: 0 created, 0 updated, 1 unchanged" in again.stdout


def test_export_pages_through_every_contact(invoke: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "many.csv"
    source.write_text("email,lists\n" + "".join(f"p{i}@example.com,paged\n" for i in range(25)))
    assert invoke("contacts", "import", source, "--batch-size", "7").exit_code == 0

    result = invoke(
        "contacts", "export", "--list", "paged", "--page-size", "4", "--format", "jsonl"
    )

    emails = sorted(json.loads(line)["email"] for line in result.stdout.splitlines())
    assert emails == sorted(f"p{i}@example.com" for i in range(25))


def test_reimporting_the_rejected_file_keeps_the_error_column_out(
    invoke: Invoke, tmp_path: Path
) -> None:
    source = tmp_path / "retry.csv"
    source.write_text("email,first_name\nretry-ok@example.com,Ok\nnot-an-email,Bad\nworse,Bad\n")
    assert invoke("contacts", "import", source).exit_code == 3
    rejected = tmp_path / "retry.rejected.csv"
    fixed = tmp_path / "fixed.csv"
    # The user fixes one row in the rejected file and imports it again, as the docs advise.
    fixed.write_text(rejected.read_text().replace("not-an-email", "fixed@example.com"))

    again = invoke("contacts", "import", fixed)

    assert again.exit_code == 3, again.output
    assert "1 created" in again.stdout
    contacts = _export_jsonl(invoke)
    assert "attributes" not in contacts["fixed@example.com"]
    with (tmp_path / "fixed.rejected.csv").open() as rejected_again:
        header = next(csv.reader(rejected_again))
    assert header == ["email", "first_name", "error"]


def test_the_summary_counts_unchanged_rows_apart(invoke: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "twice.csv"
    source.write_text("email,company\ntwice-a@example.com,A\ntwice-b@example.com,B\n")
    assert invoke("contacts", "import", source).exit_code == 0
    source.write_text("email,company\ntwice-a@example.com,A\ntwice-b@example.com,B2\n")

    again = invoke("contacts", "import", source)

    assert again.exit_code == 0, again.output
    assert "2 sent: 0 created, 1 updated, 1 unchanged" in again.stdout


def test_progress_shows_rows_per_second_and_counts(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # a terminal wide enough for every column
    source = tmp_path / "progress.csv"
    source.write_text("email\n" + "".join(f"prog{i}@example.com\n" for i in range(30)) + "bad\n")

    result = invoke("contacts", "import", source, "--progress", "--batch-size", "4")

    assert result.exit_code == 3, result.output
    assert "31 rows sent" in result.stderr
    assert "rows/s" in result.stderr
    assert "30 created, 0 updated, 0 unchanged, 1 rejected" in result.stderr
    assert "rows/s" not in result.stdout  # the summary on stdout stays plain


def test_many_parts_in_flight_keep_error_rows_in_place(invoke: Invoke, tmp_path: Path) -> None:
    # Batches of 2 in parts of 20 rows: ten parts over four streams; the bad rows land in
    # different parts, and the rejected file must still name the right ones.
    rows = [f"part{i}@example.com" if i % 37 else f"bad-{i}" for i in range(1, 200)]
    source = tmp_path / "parts.csv"
    source.write_text("email\n" + "\n".join(rows) + "\n")

    result = invoke("contacts", "import", source, "--batch-size", "2", "--streams", "4")

    assert result.exit_code == 3, result.output
    assert "199 sent: 194 created" in result.stdout
    with (tmp_path / "parts.rejected.csv").open() as rejected_file:
        rejected = [row["email"] for row in csv.DictReader(rejected_file)]
    assert rejected == [f"bad-{i}" for i in (37, 74, 111, 148, 185)]


def test_upsert_many_answers_per_row_and_replays_with_a_key_prefix(
    invoke: Invoke, tmp_path: Path
) -> None:
    source = tmp_path / "people.csv"
    # Emails of their own: the server is shared with the other tests of this module.
    source.write_text(CSV_TEXT.replace("@example.com", "@many.example.com"))
    args = ("contacts", "upsert-many", source, "--map", "Email Address=email", "--key-prefix", "p1")

    first = invoke(*args)
    again = invoke(*args)

    assert first.exit_code == 3, first.output
    rejected = [json.loads(line) for line in first.stdout.splitlines()]
    # Record 2 is refused by the server, record 3 cannot be read (opt_in "maybe").
    assert sorted((r["record"], r["code"]) for r in rejected) == [
        (2, "INVALID_ARGUMENT"),
        (3, "UNREADABLE"),
    ]
    assert "created 2, updated 0, rejected 2" in first.stderr
    # The same keys: the first answers again (created), nothing written twice.
    assert "created 2, updated 0, rejected 2" in again.stderr
    rows = _export_jsonl(invoke)
    assert rows["ada@many.example.com"]["version"] == "1"
    assert rows["alan@many.example.com"]["first_name"] == "Alan"
