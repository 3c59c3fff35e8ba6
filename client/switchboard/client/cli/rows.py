"""Contact rows from CSV and JSON Lines files, read one at a time (steady memory).

A column (or JSON key) maps to the contact field of the same name. Aliases: `opt_in` for
`consent`, `source` for `consent_source`. Read-only fields of an export (`version`,
`created_at`, `updated_at`, `external_ids`) are skipped, and so is the reason column a
rejected-rows file adds (`error`, `_error`), so that file can be fixed and imported again;
any other column goes to `attributes`. `--map COLUMN=FIELD` overrides this, where FIELD is a
contact field, `attributes.KEY` or `ignore`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from switchboard.client import ContactFields

Format = Literal["csv", "jsonl"]

TEXT_FIELDS = (
    "id", "email", "phone", "first_name", "last_name", "company", "job_title", "country",
)  # fmt: skip
FIELDS = (*TEXT_FIELDS, "lists", "consent", "consent_source", "attributes")
ALIASES = {"opt_in": "consent", "source": "consent_source"}
READ_ONLY = frozenset({"version", "created_at", "updated_at", "external_ids"})
#: The reason column of a rejected-rows file: CSV (`error`) and JSON Lines (`_error`).
REASON_COLUMNS = {"csv": "error", "jsonl": "_error"}
SKIPPED = READ_ONLY | frozenset(REASON_COLUMNS.values())
IGNORE = "ignore"
LIST_SEPARATOR = ";"
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})


class RowError(ValueError):
    """A row that cannot become a contact; the message says why."""


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """`["Email Address=email", ...]` as a dict; raises ValueError on a bad pair."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        column, target = column.strip(), target.strip()
        if not sep or not column or not target:
            raise ValueError(f"{pair!r}: expected COLUMN=FIELD")
        if target not in FIELDS and target != IGNORE and not _is_attribute(target):
            choices = ", ".join((*FIELDS, "attributes.KEY", IGNORE))
            raise ValueError(f"{pair!r}: unknown field {target!r}; expected one of: {choices}")
        mapping[column] = target
    return mapping


def detect_format(path: Path, given: str | None) -> Format:
    """The file's format: `given`, else from the extension (.csv, .jsonl, .ndjson)."""
    name = given or path.suffix.lower().lstrip(".")
    if name == "csv":
        return "csv"
    if name in ("jsonl", "ndjson"):
        return "jsonl"
    raise ValueError(f"{path.name}: cannot tell the format; use --format csv or --format jsonl")


@dataclass(frozen=True, slots=True)
class Row:
    """One record of the file: its raw form (for the rejected file) and its contact."""

    number: int  # 1-based record number, header excluded
    raw: Mapping[str, Any] | str
    contact: ContactFields | None
    error: str | None


class ContactMapper:
    """Turns one record (a CSV row or a JSON object) into `ContactFields`."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self._mapping = dict(mapping or {})

    def target(self, column: str) -> str:
        """Where a column goes: a field, `attributes.KEY` or `ignore`."""
        if column in self._mapping:
            return self._mapping[column]
        name = ALIASES.get(column, column)
        if name in FIELDS:
            return name
        if name in SKIPPED:
            return IGNORE
        return f"attributes.{column}"

    def contact(self, record: Mapping[str, Any]) -> ContactFields:
        """The contact for `record`; raises `RowError` when a value cannot be used."""
        fields: dict[str, Any] = {}
        attributes: dict[str, str] = {}
        for column, value in record.items():
            if value is None or value == "" or column is None:
                continue
            target = self.target(column)
            if target == IGNORE:
                continue
            if _is_attribute(target):
                attributes[target.removeprefix("attributes.")] = _text(value)
            elif target == "attributes":
                attributes.update(_attributes(value))
            elif target == "consent" and isinstance(value, Mapping):
                fields.update(_consent_object(value))
            else:
                fields[target] = _convert(target, value)
        if attributes:
            fields["attributes"] = attributes
        if "consent_source" in fields and "consent" not in fields:
            raise RowError("consent_source needs a consent (opt_in) value")
        return fields  # type: ignore[return-value]  # keys checked against FIELDS above


def read_rows(
    stream: Iterable[bytes], fmt: Format, mapper: ContactMapper, columns: list[str] | None = None
) -> Iterator[Row]:
    """Every record of `stream` (lines of a file opened in binary), one at a time.

    CSV column names are appended to `columns` when given.
    """
    lines = (line.decode("utf-8-sig" if n == 0 else "utf-8") for n, line in enumerate(stream))
    if fmt == "csv":
        yield from _csv_rows(lines, mapper, columns)
    else:
        yield from _jsonl_rows(lines, mapper)


def _csv_rows(
    lines: Iterator[str], mapper: ContactMapper, columns: list[str] | None
) -> Iterator[Row]:
    reader = csv.DictReader(lines)
    if columns is not None:
        columns.extend(reader.fieldnames or ())
    for number, record in enumerate(reader, start=1):
        if None in record:
            yield Row(number, record, None, f"more values than the {len(columns or ())} columns")
            continue
        yield _row(number, record, mapper)


def _jsonl_rows(lines: Iterator[str], mapper: ContactMapper) -> Iterator[Row]:
    number = 0
    for line in lines:
        if not line.strip():
            continue
        number += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Row(number, line.rstrip("\r\n"), None, f"not JSON: {exc.msg}")
            continue
        if not isinstance(record, dict):
            yield Row(number, line.rstrip("\r\n"), None, "not a JSON object")
            continue
        yield _row(number, record, mapper)


def _row(number: int, record: Mapping[str, Any], mapper: ContactMapper) -> Row:
    try:
        return Row(number, record, mapper.contact(record), None)
    except RowError as exc:
        return Row(number, record, None, str(exc))


def _convert(field: str, value: Any) -> Any:
    if field == "lists":
        items = value if isinstance(value, list) else str(value).split(LIST_SEPARATOR)
        return [str(item).strip() for item in items if str(item).strip()]
    if field == "consent":
        return _boolean(value)
    return _text(value)


def _consent_object(value: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"consent": _boolean(value.get("opt_in", False))}
    if value.get("source"):
        fields["consent_source"] = _text(value["source"])
    return fields


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RowError(f"consent: {value!r} is not a yes/no value")


def _attributes(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(f"attributes: not a JSON object ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise RowError("attributes: not a JSON object")
    return {str(key): _text(item) for key, item in value.items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _is_attribute(target: str) -> bool:
    return target.startswith("attributes.") and len(target) > len("attributes.")
