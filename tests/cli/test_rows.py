"""Mapping CSV and JSON Lines records to contact fields (no server needed)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from switchboard.client.cli.rows import (
    ContactMapper,
    RowError,
    detect_format,
    parse_mapping,
    read_rows,
)


@pytest.mark.parametrize(
    ("record", "mapping", "expected"),
    [
        pytest.param(
            {"email": "a@x.io", "First": "A"},
            {"First": "first_name"},
            {"email": "a@x.io", "first_name": "A"},
            id="explicit-map",
        ),
        pytest.param(
            {"email": "a@x.io", "plan": "pro", "created_at": "2024"},
            {},
            {"email": "a@x.io", "attributes": {"plan": "pro"}},
            id="unknown-to-attributes-read-only-skipped",
        ),
        pytest.param(
            {"email": "a@x.io", "error": "INVALID_ARGUMENT: x", "_error": "not JSON"},
            {},
            {"email": "a@x.io"},
            id="rejected-file-reason-columns-skipped",
        ),
        pytest.param(
            {"email": "a@x.io", "error": "kept"},
            {"error": "attributes.error"},
            {"email": "a@x.io", "attributes": {"error": "kept"}},
            id="reason-column-kept-when-mapped",
        ),
        pytest.param(
            {"opt_in": "Yes", "source": "web", "lists": " a ; b ;"},
            {},
            {"consent": True, "consent_source": "web", "lists": ["a", "b"]},
            id="aliases-and-lists",
        ),
        pytest.param(
            {"Tier": "2", "Notes": "x"},
            {"Tier": "attributes.tier", "Notes": "ignore"},
            {"attributes": {"tier": "2"}},
            id="attribute-key-and-ignore",
        ),
        pytest.param(
            {"consent": {"opt_in": False}, "attributes": {"n": 1}, "lists": ["x"]},
            {},
            {"consent": False, "attributes": {"n": "1"}, "lists": ["x"]},
            id="json-shapes",
        ),
        pytest.param({"email": "", "phone": None}, {}, {}, id="empty-cells-skipped"),
    ],
)
def test_mapping(record: dict[str, Any], mapping: dict[str, str], expected: dict[str, Any]) -> None:
    assert ContactMapper(mapping).contact(record) == expected


@pytest.mark.parametrize(
    ("record", "message"),
    [
        pytest.param({"opt_in": "perhaps"}, "not a yes/no value", id="bad-boolean"),
        pytest.param({"source": "web"}, "needs a consent", id="source-without-consent"),
        pytest.param({"attributes": "[1]"}, "not a JSON object", id="attributes-not-object"),
    ],
)
def test_bad_values_are_row_errors(record: dict[str, Any], message: str) -> None:
    with pytest.raises(RowError, match=message):
        ContactMapper().contact(record)


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        pytest.param("email", "expected COLUMN=FIELD", id="no-equals"),
        pytest.param("col=emali", "unknown field 'emali'", id="typo"),
    ],
)
def test_bad_mapping_is_refused(pair: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mapping([pair])


def test_csv_rows_keep_their_raw_form_and_flag_extra_values() -> None:
    data = b"\xef\xbb\xbfemail,first_name\na@x.io,A\nb@x.io,B,surplus\n"
    columns: list[str] = []
    rows = list(read_rows(io.BytesIO(data), "csv", ContactMapper(), columns))
    assert columns == ["email", "first_name"]  # the byte-order mark is not part of a name
    assert rows[0].contact == {"email": "a@x.io", "first_name": "A"}
    assert rows[1].error == "more values than the 2 columns"


def test_format_comes_from_the_extension_or_the_option() -> None:
    from pathlib import Path

    assert detect_format(Path("x.CSV"), None) == "csv"
    assert detect_format(Path("x.ndjson"), None) == "jsonl"
    assert detect_format(Path("x.txt"), "jsonl") == "jsonl"
    with pytest.raises(ValueError, match="cannot tell the format"):
        detect_format(Path("x.txt"), None)
