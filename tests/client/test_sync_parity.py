"""`SyncSwitchboard` keeps up with `Switchboard`: every public async method, same parameters."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from switchboard.client import (
    Campaigns,
    Connectors,
    Contacts,
    Leads,
    Switchboard,
    SyncCampaigns,
    SyncConnectors,
    SyncContacts,
    SyncLeads,
    SyncSwitchboard,
)

PAIRS = [
    pytest.param(Contacts, SyncContacts, id="contacts"),
    pytest.param(Leads, SyncLeads, id="leads"),
    pytest.param(Campaigns, SyncCampaigns, id="campaigns"),
    pytest.param(Connectors, SyncConnectors, id="connectors"),
]


def _public_methods(cls: type[Any]) -> dict[str, Any]:
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member)
    }


def _parameters(function: Any) -> list[tuple[str, Any, Any]]:
    # `self` is dropped so an async method and its blocking twin compare equal.
    signature = inspect.signature(function)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values() if p.name != "self"]


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS)
def test_every_async_method_has_a_blocking_twin(async_cls: type[Any], sync_cls: type[Any]) -> None:
    async_methods = _public_methods(async_cls)
    sync_methods = _public_methods(sync_cls)

    assert sorted(sync_methods) == sorted(async_methods)
    for name, method in async_methods.items():
        assert _parameters(sync_methods[name]) == _parameters(method), name


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS)
def test_blocking_twins_wrap_the_method_of_the_same_name(
    async_cls: type[Any], sync_cls: type[Any]
) -> None:
    for name, method in _public_methods(sync_cls).items():
        assert method.__wrapped__ is vars(async_cls)[name], name


def test_the_sync_client_takes_the_async_clients_arguments_but_channel() -> None:
    async_params = [p for p in _parameters(Switchboard.__init__) if p[0] != "channel"]
    sync_params = _parameters(SyncSwitchboard.__init__)

    # The sync client needs a target (its channel is made on its own loop): no default.
    assert async_params[0] == ("target", inspect.Parameter.POSITIONAL_OR_KEYWORD, None)
    assert sync_params[0] == (
        "target",
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.empty,
    )
    assert sync_params[1:] == async_params[1:]
