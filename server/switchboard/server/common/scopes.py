"""The scope each RPC needs, read from the contract: `option (switchboard.v1.required_scope)`.

The `.proto` files are where callers read the API, so the scope is written there, beside each
RPC (protos/switchboard/v1/options.proto defines the option), and docs/api.md shows it. The
auth interceptor enforces this table; an RPC without the option is left out of it and so is
refused (PERMISSION_DENIED): a new RPC is closed until its scope is written in the contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from google.protobuf.descriptor import FileDescriptor

from switchboard.v1 import (
    admin_pb2,
    campaigns_pb2,
    connectors_pb2,
    contacts_pb2,
    events_pb2,
    leads_pb2,
    options_pb2,
    segments_pb2,
)

# The generated stub types the extension as a plain FieldDescriptor, which `Extensions[...]`
# does not accept under mypy; the runtime object is the extension handle.
REQUIRED_SCOPE: Any = options_pb2.required_scope


def scope_table(files: Iterable[FileDescriptor]) -> dict[str, str]:
    """`/pkg.Service/Method` → its required scope, for every RPC of `files` that names one."""
    table: dict[str, str] = {}
    for file in files:
        for service in file.services_by_name.values():
            for method in service.methods:
                options = method.GetOptions()
                if options.HasExtension(REQUIRED_SCOPE):
                    scope: str = options.Extensions[REQUIRED_SCOPE]
                    if scope:
                        table[f"/{service.full_name}/{method.name}"] = scope
    return table


#: The public API's files that define services: scopes, health names, Connect routes and
#: the tests that call every RPC all walk this one list, so a new service is added here once.
API_MODULES: Final[tuple[Any, ...]] = (
    contacts_pb2,
    leads_pb2,
    campaigns_pb2,
    connectors_pb2,
    events_pb2,
    segments_pb2,
    admin_pb2,
)

SCOPE_BY_METHOD: Final[dict[str, str]] = scope_table(m.DESCRIPTOR for m in API_MODULES)

ALL_SCOPES: Final[frozenset[str]] = frozenset(SCOPE_BY_METHOD.values())
