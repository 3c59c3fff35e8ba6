"""docs/api.md covers every service, RPC, message, field and enum value of switchboard.v1."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, FileDescriptor

from switchboard.server.common.scopes import SCOPE_BY_METHOD
from switchboard.v1 import (
    campaigns_pb2,
    common_pb2,
    connectors_pb2,
    contacts_pb2,
    leads_pb2,
    options_pb2,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
FILES = [campaigns_pb2, common_pb2, connectors_pb2, contacts_pb2, leads_pb2, options_pb2]


def _messages(file: FileDescriptor) -> list[Descriptor]:
    found: list[Descriptor] = []
    pending = list(file.message_types_by_name.values())
    while pending:
        message = pending.pop()
        if not message.GetOptions().map_entry:
            found.append(message)
            pending.extend(message.nested_types)
    return found


@pytest.mark.parametrize("module", [pytest.param(m, id=m.__name__) for m in FILES])
def test_every_definition_is_documented(module: object) -> None:
    doc = DOC.read_text()
    file: FileDescriptor = module.DESCRIPTOR  # type: ignore[attr-defined]
    assert f"## {file.name}" in doc
    for service in file.services_by_name.values():
        assert f"### service {service.name}" in doc
        for method in service.methods:
            assert f"| `{method.name}` |" in doc
    for message in _messages(file):
        assert f"### {message.full_name.removeprefix('switchboard.v1.')}\n" in doc
        for field in message.fields:
            assert f"| `{field.name}` | {field.number} |" in doc
    for enum in file.enum_types_by_name.values():
        assert f"### enum {enum.name}" in doc
        for value in enum.values:
            assert f"| `{value.name}` | {value.number} |" in doc


def test_every_rpc_row_shows_the_scope_the_server_enforces() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    for path, scope in SCOPE_BY_METHOD.items():
        name = path.rpartition("/")[2]
        row = next(r for r in rows if r.startswith(f"| `{name}` | "))
        assert f" | `{scope}` | " in row, row


def test_the_scope_option_is_documented() -> None:
    doc = DOC.read_text()
    assert "### option (switchboard.v1.required_scope)" in doc
    assert "| `google.protobuf.MethodOptions` | 50001 | `string` |" in doc
